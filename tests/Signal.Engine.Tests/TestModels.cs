using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Engine.Payloads;
using Signal.Features.Pipeline;
using Signal.Models.Networks;

namespace Signal.Engine.Tests;

internal static class TestModels
{
    public static readonly string[] Labels = ["normal", "inner", "outer"];

    public static FeatureSpec Spec(int channels = 3) => new()
    {
        SampleRate = 1000,
        Channels = channels,
        FrameLength = 64,
        Hop = 32,
        Features = FeatureRequest.ParseList("rms,kurtosis,spectral_centroid,mel:8"),
    };

    /// <summary>A random GRU behind a feature pipeline, as <c>signal-edge train</c> writes it.</summary>
    public static EngineModel WithFeatures(int channels = 3, int seed = 7, bool forecast = false)
    {
        FeatureSpec spec = Spec(channels);
        var pipeline = new FeaturePipeline(spec);
        RecurrentModel network = RecurrentModel.CreateRandom(Architecture(pipeline.OutputLength, forecast), seed, Labels)
            .WithMetadata(new Dictionary<string, string> { [FeatureSequences.MetadataKey] = spec.ToJson() });
        return EngineModel.From(network, "test");
    }

    /// <summary>A random GRU that takes feature vectors (or raw samples) of <paramref name="input"/> values directly.</summary>
    public static EngineModel Raw(int input, int seed = 7, bool forecast = false) =>
        EngineModel.From(RecurrentModel.CreateRandom(Architecture(input, forecast), seed, Labels), "raw");

    public static ModelArchitecture Architecture(int input, bool forecast = false) => new()
    {
        InputSize = input,
        Classes = 3,
        ForecastSize = forecast ? input : 0,
        Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 16 }, new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 16 }],
    };

    /// <summary>A three-channel test signal whose character changes over time.</summary>
    public static float[] Signal(int samples, int channels, int seed)
    {
        var rng = new Random(seed);
        var x = new float[samples * channels];
        for (int i = 0; i < samples; i++)
        {
            for (int c = 0; c < channels; c++)
            {
                double f = 0.02 + (0.05 * c) + (i > samples / 2 ? 0.1 : 0);
                x[(i * channels) + c] = (float)(Math.Sin(i * f * 2 * Math.PI) + (0.2 * rng.NextDouble()));
            }
        }

        return x;
    }

    /// <summary>The offline reference: features of the whole signal, then one network step per row.</summary>
    public static List<float[]> Offline(EngineModel model, float[] signal)
    {
        float[] inputs = model.Pipeline is { } p ? p.ExtractAll(signal) : signal;
        RecurrentState state = model.Network.CreateState();
        var result = new List<float[]>();
        for (int t = 0; t < inputs.Length / model.Network.InputSize; t++)
        {
            var probabilities = new float[model.Network.ClassCount];
            model.Network.Step(state, inputs.AsSpan(t * model.Network.InputSize, model.Network.InputSize), probabilities);
            result.Add(probabilities);
        }

        return result;
    }

    public static byte[] Binary(ulong sequence, long timestampNs, double rate, int channels, ReadOnlySpan<float> values, bool features = false)
    {
        var bytes = new byte[BinaryPayload.HeaderLength + (4 * values.Length)];
        BinaryPayload.Write(bytes, sequence, timestampNs, rate, channels, values, features);
        return bytes;
    }

    /// <summary>Cuts a signal into binary messages of random sizes with sequence numbers and timestamps.</summary>
    public static List<byte[]> Messages(float[] signal, int channels, double rate, int seed, long startNs = 1_700_000_000_000_000_000)
    {
        var rng = new Random(seed);
        var messages = new List<byte[]>();
        int samples = signal.Length / channels;
        ulong sequence = 0;
        for (int i = 0; i < samples;)
        {
            int n = Math.Min(samples - i, rng.Next(1, 90));
            messages.Add(Binary(sequence++, startNs + (long)Math.Round(i * 1e9 / rate), rate, channels, signal.AsSpan(i * channels, n * channels)));
            i += n;
        }

        return messages;
    }
}
