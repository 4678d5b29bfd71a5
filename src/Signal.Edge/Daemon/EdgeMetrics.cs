using System.Globalization;
using Signal.Engine.Live;

namespace Signal.Edge.Daemon;

/// <summary>Everything <c>/metrics</c> exposes, in the Prometheus text format.</summary>
internal static class EdgeMetrics
{
    private static readonly double[] s_batchBounds = [.. Enumerable.Range(0, EngineCounters.BatchBuckets - 1).Select(i => (double)(1 << i))];

    /// <summary>Renders every metric of the daemon.</summary>
    public static string Render(EdgeDaemon daemon)
    {
        var w = new PrometheusWriter();
        (bool ready, _, bool broker, bool storage, _) = daemon.Readiness();
        w.Gauge("signal_ready", "1 when the daemon is ready (running, broker connected, storage writable).", ready ? 1 : 0);
        w.Gauge("signal_uptime_seconds", "Seconds since the process started.", (DateTimeOffset.UtcNow - daemon.StartedAt).TotalSeconds);
        if (daemon.SecondsToReady is { } toReady)
        {
            w.Gauge("signal_start_to_ready_seconds", "Seconds from process start to the first ready moment.", toReady);
        }

        foreach (ModelSlot slot in daemon.Slots)
        {
            EngineCounters c = slot.Engine.Counters;
            (string, string) model = ("model", slot.Name);
            w.Counter("signal_messages_total", "Messages taken in, per model.", c.Messages, model);
            w.Counter("signal_samples_total", "Samples (or feature vectors) accepted, per model.", c.Samples, model);
            w.Counter("signal_frames_total", "Frames (network inputs) produced, per model.", c.Frames, model);
            w.Counter("signal_steps_total", "Stream steps run, per model.", c.Steps, model);
            w.Counter("signal_batches_total", "Batched steps run, per model.", c.Batches, model);
            w.Counter("signal_duplicates_total", "Redelivered messages dropped by sequence number, per model.", c.Duplicates, model);
            w.Counter("signal_restore_gaps_total", "Streams restored from a checkpoint whose next message jumped forward (what a crash lost); they continued with their state.", c.RestoreGaps, model);
            w.Counter("signal_alert_changes_total", "Alert raises and clears, per model.", c.Alerts, model);
            w.Gauge("signal_streams", "Streams held, per model.", slot.Engine.StreamCount, model);
            foreach ((string reason, long n) in c.Rejected)
            {
                w.Counter("signal_rejected_total", "Messages rejected, by model and reason.", n, model, ("reason", reason));
            }

            foreach ((string reason, long n) in c.Resets)
            {
                w.Counter("signal_resets_total", "Stream state resets, by model and reason.", n, model, ("reason", reason));
            }

            foreach ((string reason, long n) in c.Evictions)
            {
                w.Counter("signal_evictions_total", "Streams evicted, by model and reason.", n, model, ("reason", reason));
            }

            w.Counter("signal_model_reloads_total", "Model reloads, by model and result (kept: stream state carried over; reset: another architecture; failed: the file did not load).", slot.Reloads, model, ("result", "kept"));
            w.Counter("signal_model_reloads_total", string.Empty, slot.ReloadResets, model, ("result", "reset"));
            w.Counter("signal_model_reloads_total", string.Empty, slot.ReloadFailures, model, ("result", "failed"));
        }

        if (daemon.Cluster is { } cluster)
        {
            Signal.Edge.Cluster.ClusterCounters k = cluster.Counters;
            w.Counter("signal_cluster_received_total", "Messages this silo took from the shared subscription.", k.Received);
            w.Counter("signal_cluster_forwarded_total", "Messages delivered to a shard on another silo.", k.Forwarded);
            w.Counter("signal_cluster_local_total", "Messages delivered to a shard on this silo.", k.Local);
            w.Counter("signal_cluster_dropped_total", "Messages dropped while their shard was unreachable and its queue full.", k.Dropped);
            w.Counter("signal_cluster_retries_total", "Deliveries retried (a shard moving, a silo failing).", k.Retries);
            w.Counter("signal_cluster_activations_total", "Shard activations on this silo (placements, moves in, failovers).", k.Activations);
            w.Counter("signal_cluster_deactivations_total", "Shard deactivations on this silo (moves out, shutdown).", k.Deactivations);
            w.Counter("signal_cluster_restored_total", "Shard activations that started from a checkpoint in Redis.", k.Restored);
            w.Counter("signal_cluster_checkpoints_total", "Shard checkpoints written to Redis.", k.Checkpoints);
            w.Counter("signal_cluster_checkpoint_failures_total", "Shard checkpoints that failed (Redis unreachable).", k.CheckpointFailures);
            w.Counter("signal_cluster_gaps_total", "Times a shard went on with a stream after waiting for messages that never came (lost with a silo).", k.Gaps);
            w.Counter("signal_cluster_checkpoints_unreadable_total", "Shard activations whose checkpoint could not be restored (damaged or incompatible); their streams started afresh.", k.Unreadable);
            w.Counter("signal_cluster_revived_total", "Shards started again after a move that failed (Orleans kept routing to the stopped activation).", k.Revived);
            w.Gauge("signal_cluster_shards", "Shards active on this silo.", cluster.LocalShards);
        }

        foreach (ModelSlot slot in daemon.Slots)
        {
            BatchHistogram(w, slot);
            slot.ResultAge.Write(w, "signal_result_age_seconds", "Data time of a step's last sample to its result, per model (sensor-to-result latency when clocks agree).", PrometheusWriter.Labels(("model", slot.Name)).Trim('{', '}'));
        }

        daemon.MessageLatency.Write(w, "signal_message_latency_seconds", "Arrival of a message to the end of its processing, the steps it completed included.");
        w.Counter("signal_drops_total", "Data dropped, by reason.", daemon.Connection.Counters.Qos0Dropped, ("reason", "mqtt_qos0_overflow"));
        w.Counter("signal_drops_total", string.Empty, daemon.Slots.Sum(s => s.PublisherDropped), ("reason", "result_publisher"));
        w.Counter("signal_internal_errors_total", "Exceptions contained while processing messages or stepping batches (defects; the loop went on).", daemon.InternalErrors + daemon.Slots.Sum(s => s.Engine.Counters.InternalErrors));
        w.Counter("signal_unrouted_total", "Messages whose topic no model's template matched (also counted by the first model as rejected topic_mismatch).", daemon.Unrouted);
        w.Counter("signal_ignored_total", "Messages skipped on purpose: the daemon's own results under the publish prefix.", daemon.OwnResults, ("reason", "own_results"));
        w.Counter("signal_drops_total", string.Empty, daemon.Slots.Sum(s => s.Engine.Counters.RejectedTotal), ("reason", "rejected_input"));
        if (daemon.Influx is { } influx)
        {
            w.Counter("signal_drops_total", string.Empty, influx.Counters.Dropped, ("reason", "storage_spool_full"));
            w.Counter("signal_drops_total", string.Empty, influx.Counters.DeadLettered, ("reason", "storage_refused"));
            w.Gauge("signal_storage_writable", "1 while storage takes writes (or a spool with room holds them).", storage ? 1 : 0);
            w.Counter("signal_storage_points_written_total", "Points the database accepted.", influx.Counters.Written);
            w.Counter("signal_storage_requests_total", "Write requests that succeeded.", influx.Counters.Requests);
            w.Counter("signal_storage_retries_total", "Write retries.", influx.Counters.Retries);
            w.Gauge("signal_storage_spool_points", "Points waiting in the disk spool.", influx.SpoolPoints);
            w.Gauge("signal_storage_spool_bytes", "Bytes of the disk spool.", influx.SpoolBytes);
        }

        foreach ((AlertSeverity severity, long n) in daemon.Board.RaisedBySeverity)
        {
            w.Counter("signal_alerts_raised_total", "Alerts raised, by severity.", n, ("severity", severity.ToString().ToLowerInvariant()));
        }

        w.Gauge("signal_alerts_active", "Alerts now raised, over all streams.", daemon.Board.ActiveAlerts);
        Signal.Engine.Mqtt.MqttCounters m = daemon.Connection.Counters;
        w.Gauge("signal_mqtt_connected", "1 while the broker connection is up.", broker ? 1 : 0);
        w.Counter("signal_mqtt_received_total", "Messages received from the broker.", m.Received);
        w.Counter("signal_mqtt_received_bytes_total", "Payload bytes received from the broker.", m.ReceivedBytes);
        w.Counter("signal_mqtt_published_total", "Messages published (results, alerts, status).", m.Published);
        w.Counter("signal_mqtt_connections_lost_total", "Established broker sessions lost (an outage counts once).", m.ConnectionsLost);
        w.Counter("signal_mqtt_connections_refused_total", "Connections the broker refused in its CONNACK.", m.Refused);
        w.Counter("signal_mqtt_short_sessions_total", "Sessions lost within 10 s of their start (session take-over by a client with the same id); each backs off the next reconnect.", m.ShortSessions);
        w.Gauge("signal_process_resident_memory_bytes", "Resident set size of the process.", Environment.WorkingSet);
        w.Gauge("signal_managed_heap_bytes", "Bytes of the managed heap (live and not yet collected).", GC.GetTotalMemory(false));
        w.Gauge("signal_gc_committed_bytes", "Bytes the garbage collector has committed.", GC.GetGCMemoryInfo().TotalCommittedBytes);
        w.Counter("signal_gc_allocated_bytes_total", "Bytes allocated on the managed heap since start.", GC.GetTotalAllocatedBytes(false));
        for (int generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            w.Counter("signal_gc_collections_total", "Garbage collections, by generation.", GC.CollectionCount(generation), ("generation", generation.ToString(CultureInfo.InvariantCulture)));
        }
        w.Counter("signal_idle_trims_total", "Aggressive collections made when traffic stopped after a burst.", daemon.Trims);
        return w.ToString();
    }

    private static void BatchHistogram(PrometheusWriter w, ModelSlot slot)
    {
        const string name = "signal_batch_size";
        w.Header(name, "Streams per batched step, per model.", "histogram");
        IReadOnlyList<long> cumulative = slot.Engine.Counters.BatchSizes;
        string model = PrometheusWriter.Labels(("model", slot.Name)).Trim('{', '}');
        for (int i = 0; i < s_batchBounds.Length; i++)
        {
            w.Sample(name + "_bucket", "{" + model + ",le=\"" + s_batchBounds[i].ToString(System.Globalization.CultureInfo.InvariantCulture) + "\"}", cumulative[i]);
        }

        w.Sample(name + "_bucket", "{" + model + ",le=\"+Inf\"}", cumulative[^1]);
        w.Sample(name + "_sum", "{" + model + "}", slot.Engine.Counters.Steps);
        w.Sample(name + "_count", "{" + model + "}", slot.Engine.Counters.Batches);
    }
}
