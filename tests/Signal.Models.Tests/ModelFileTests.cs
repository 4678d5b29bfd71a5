using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Signal.Models.Files;
using Signal.Models.Networks;

namespace Signal.Models.Tests;

public sealed class ModelFileTests
{
    private static RecurrentModel Sample() => RecurrentModel.CreateRandom(new ModelArchitecture
    {
        InputSize = 6,
        Classes = 3,
        ForecastSize = 6,
        Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = 8, ProjectionSize = 4 }, new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 5, LayerNorm = true }],
    }, seed: 9, labels: ["idle", "run", "fault"]).WithMetadata(new Dictionary<string, string> { ["signal.features"] = "{\"x\":1}" });

    private static byte[] Bytes(RecurrentModel model)
    {
        using var stream = new MemoryStream();
        model.Save(stream);
        return stream.ToArray();
    }

    [Fact]
    public void Save_and_load_round_trip_exactly()
    {
        RecurrentModel model = Sample();
        byte[] bytes = Bytes(model);
        RecurrentModel loaded = RecurrentModel.Load(bytes);
        Assert.Equal(model.Tensors.Keys.Order(), loaded.Tensors.Keys.Order());
        foreach ((string name, Tensor tensor) in model.Tensors)
        {
            Assert.Equal(tensor.Shape, loaded.Tensors[name].Shape);
            Assert.Equal(tensor.Data, loaded.Tensors[name].Data);
        }

        Assert.Equal(["idle", "run", "fault"], loaded.Labels);
        Assert.Equal("{\"x\":1}", loaded.Metadata["signal.features"]);
        Assert.Equal(model.Architecture.ToJson(), loaded.Architecture.ToJson());
        Assert.Equal(bytes, Bytes(loaded));
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8);
    }

    [Fact]
    public void A_file_that_is_not_a_model_is_refused_naming_the_problem()
    {
        byte[] good = Bytes(Sample());
        Expect(Encoding.ASCII.GetBytes("GIF89a"), "8-byte header length");
        Expect([.. BitConverter.GetBytes(ulong.MaxValue), .. good.AsSpan(8)], "not plausible");
        Expect(good.AsSpan(0, 100).ToArray(), "truncated");
        Expect(good.AsSpan(0, good.Length - 4).ToArray(), "outside the");
    }

    [Fact]
    public void Missing_tensors_shape_mismatches_bad_values_and_unknown_kinds_are_named()
    {
        RecurrentModel model = Sample();
        var tensors = new Dictionary<string, Tensor>(model.Tensors);
        tensors.Remove("layers.1.weight_hh_l0");
        Assert.Contains("tensor 'layers.1.weight_hh_l0' is missing", Assert.Throws<ModelFormatException>(() => RecurrentModel.Create(model.Architecture, tensors, model.Labels)).Message, StringComparison.Ordinal);

        tensors = new Dictionary<string, Tensor>(model.Tensors) { ["head.weight"] = new Tensor("head.weight", [3, 4], new float[12]) };
        Assert.Contains("'head.weight' has shape [3, 4]", Assert.Throws<ModelFormatException>(() => RecurrentModel.Create(model.Architecture, tensors, model.Labels)).Message, StringComparison.Ordinal);

        float[] bad = (float[])model.Tensors["layers.0.weight_ih_l0"].Data.Clone();
        bad[17] = float.NaN;
        tensors = new Dictionary<string, Tensor>(model.Tensors) { ["layers.0.weight_ih_l0"] = new Tensor("layers.0.weight_ih_l0", [32, 6], bad) };
        Assert.Contains("holds NaN at index 17", Assert.Throws<ModelFormatException>(() => RecurrentModel.Create(model.Architecture, tensors, model.Labels)).Message, StringComparison.Ordinal);

        string json = model.Architecture.ToJson().Replace("\"gru\"", "\"transformer\"", StringComparison.Ordinal);
        Assert.Contains("architecture is not valid", Assert.Throws<ModelFormatException>(() => ModelArchitecture.FromJson(json)).Message, StringComparison.Ordinal);
        string hidden = model.Architecture.ToJson().Replace("\"hiddenSize\":5", "\"hiddenSize\":0", StringComparison.Ordinal);
        Assert.Contains("layers[1].hiddenSize", Assert.Throws<ModelFormatException>(() => ModelArchitecture.FromJson(hidden)).Message, StringComparison.Ordinal);
        Assert.Contains("3 classes but 2 labels", Assert.Throws<ModelFormatException>(() => RecurrentModel.Create(model.Architecture, model.Tensors, ["a", "b"])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_corruptions_always_give_a_clear_error_never_a_crash_or_hang()
    {
        byte[] good = Bytes(Sample());
        var random = new Random(2024);
        int refused = 0, loaded = 0;
        var watch = Stopwatch.StartNew();
        for (int trial = 0; trial < 3000; trial++)
        {
            byte[] bad = (byte[])good.Clone();
            switch (trial % 5)
            {
                case 0: // flip bytes anywhere
                    for (int i = 0; i < 1 + random.Next(4); i++)
                    {
                        bad[random.Next(bad.Length)] ^= (byte)(1 << random.Next(8));
                    }

                    break;
                case 1: // flip bytes in the header
                    int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
                    bad[random.Next(headerEnd)] = (byte)random.Next(256);
                    break;
                case 2: // truncate
                    bad = bad.AsSpan(0, random.Next(bad.Length)).ToArray();
                    break;
                case 3: // random header length
                    BinaryPrimitives.WriteUInt64LittleEndian(bad, (ulong)random.NextInt64());
                    break;
                default: // digits in the header changed
                    int end = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
                    for (int i = 8; i < end; i++)
                    {
                        if (bad[i] is >= (byte)'0' and <= (byte)'9' && random.Next(20) == 0)
                        {
                            bad[i] = (byte)('0' + random.Next(10));
                        }
                    }

                    break;
            }

            try
            {
                RecurrentModel model = RecurrentModel.Load(bad);
                // A corrupted file that still loads passed every check: it must then be a model that runs, with
                // finite outputs and probabilities that sum to one (a flipped weight bit changes values, not validity).
                AssertRuns(model, random);
                loaded++;
            }
            catch (ModelFormatException e)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                refused++;
            }
        }

        Assert.True(refused > 1000, $"only {refused} of 3000 corruptions were refused");
        Assert.True(loaded > 100, $"only {loaded} of 3000 corruptions loaded: the run-check above covered too little");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"fuzzing took {watch.Elapsed}");
    }

    private static void AssertRuns(RecurrentModel model, Random random)
    {
        Assert.Equal(model.ClassCount, model.Labels.Count);
        Assert.DoesNotContain(model.Architecture.Layers, l => l.Bidirectional); // Sample() streams; a corruption cannot make it offline-only and load
        RecurrentState state = model.CreateState();
        var probabilities = new float[model.ClassCount];
        var forecast = new float[model.ForecastSize];
        for (int step = 0; step < 3; step++)
        {
            float[] input = [.. Enumerable.Range(0, model.InputSize).Select(_ => (float)((random.NextDouble() * 2) - 1))];
            model.Step(state, input, probabilities, forecast);
            Assert.All(probabilities, p => Assert.True(float.IsFinite(p) && p >= 0 && p <= 1));
            Assert.All(forecast, f => Assert.True(float.IsFinite(f)));
            if (model.ClassCount > 0)
            {
                Assert.Equal(1.0, probabilities.Sum(), 4);
            }
        }
    }

    private static void Expect(byte[] file, string fragment)
    {
        var e = Assert.Throws<ModelFormatException>(() => RecurrentModel.Load(file));
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }
}
