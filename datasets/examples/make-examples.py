#!/usr/bin/env python3
"""Writes the tiny example files of datasets/examples (standard library only, fixed seeds: the output is reproducible).

  vibration.csv    features, replay, infer: a recording, one column per channel (here one: vib), 12 kHz, 0.5 s;
                   shaft harmonics and noise, with an outer-race fault's ringing impacts in the second half.
  machines.csv     train: recording,timestamp,<channel>...,label; 8 recordings of 3 s at 100 Hz, 2 channels,
                   labels idle and running; timestamps in seconds.
  temperature.csv  detect: timestamp,<value>...; 10 days of 5-minute readings with a daily cycle, ISO 8601 times,
                   and a +4 degree level shift from day 8, 14:00 on.
"""
import math
import random
from datetime import datetime, timedelta, timezone

def vibration(path, rate=12000, seconds=0.5, seed=1):
    rng = random.Random(seed)
    n = int(rate * seconds)
    shaft, fault = 29.95, 107.4
    with open(path, "w", newline="\n") as f:
        f.write("vib\n")
        for i in range(n):
            t = i / rate
            x = 0.3 * math.sin(2 * math.pi * shaft * t) + 0.1 * math.sin(2 * math.pi * 2 * shaft * t) + rng.gauss(0, 0.05)
            if i >= n // 2:
                since = (t % (1 / fault))
                x += 1.2 * math.exp(-since * 900) * math.sin(2 * math.pi * 3000 * since)
            f.write(f"{x:.5f}\n")

def machines(path, rate=100, seconds=3, seed=2):
    rng = random.Random(seed)
    with open(path, "w", newline="\n") as f:
        f.write("recording,timestamp,x,y,label\n")
        for r in range(8):
            label = "idle" if r % 2 == 0 else "running"
            hz = 0 if label == "idle" else 7 + rng.random()
            for i in range(rate * seconds):
                t = i / rate
                x = rng.gauss(0, 0.05) + (0.8 * math.sin(2 * math.pi * hz * t) if hz else 0)
                y = rng.gauss(0, 0.05) + (0.4 * math.cos(2 * math.pi * hz * t) if hz else 0)
                f.write(f"m{r},{t:.2f},{x:.4f},{y:.4f},{label}\n")

def temperature(path, days=10, seed=3):
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    shift = start + timedelta(days=8, hours=14)
    with open(path, "w", newline="\n") as f:
        f.write("timestamp,temperature\n")
        for i in range(days * 288):
            t = start + timedelta(minutes=5 * i)
            hour = t.hour + t.minute / 60
            value = 21 + 3 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.gauss(0, 0.25) + (4 if t >= shift else 0)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{value:.2f}\n")

if __name__ == "__main__":
    vibration("vibration.csv")
    machines("machines.csv")
    temperature("temperature.csv")
