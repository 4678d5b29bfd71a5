using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Engine.Evaluation;

/// <summary>Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of a classifier on a split.</summary>
/// <param name="Confusion">Counts, [true class, predicted class].</param>
/// <param name="ClassNames">Class labels.</param>
/// <param name="AccuracyBySeen">Accuracy of the class at 10%, 20%, …, 100% of each sequence (how early the class is right).</param>
public sealed record ClassificationMetrics(int[,] Confusion, IReadOnlyList<string> ClassNames, IReadOnlyList<double> AccuracyBySeen)
{
    /// <summary>Sequences evaluated.</summary>
    public int Count => Confusion.Cast<int>().Sum();

    /// <summary>Fraction classified correctly.</summary>
    public double Accuracy => Count == 0 ? 0 : (double)Enumerable.Range(0, ClassNames.Count).Sum(c => Confusion[c, c]) / Count;

    /// <summary>The mean cross-entropy −ln p(label) of the last step's probabilities (NaN when not computed): how sure the right answers are.</summary>
    public double LogLoss { get; init; } = double.NaN;

    /// <summary>Precision of class <paramref name="c"/> (0 when nothing was predicted as it).</summary>
    /// <param name="c">Class index.</param>
    /// <returns>The precision.</returns>
    public double Precision(int c)
    {
        int predicted = Enumerable.Range(0, ClassNames.Count).Sum(t => Confusion[t, c]);
        return predicted == 0 ? 0 : (double)Confusion[c, c] / predicted;
    }

    /// <summary>Recall of class <paramref name="c"/>.</summary>
    /// <param name="c">Class index.</param>
    /// <returns>The recall.</returns>
    public double Recall(int c)
    {
        int actual = Enumerable.Range(0, ClassNames.Count).Sum(p => Confusion[c, p]);
        return actual == 0 ? 0 : (double)Confusion[c, c] / actual;
    }

    /// <summary>F1 of class <paramref name="c"/>.</summary>
    /// <param name="c">Class index.</param>
    /// <returns>The F1 score.</returns>
    public double F1(int c)
    {
        double p = Precision(c), r = Recall(c);
        return p + r == 0 ? 0 : 2 * p * r / (p + r);
    }

    /// <summary>Mean F1 over the classes present in the split.</summary>
    public double MacroF1
    {
        get
        {
            int[] present = [.. Enumerable.Range(0, ClassNames.Count).Where(c => Enumerable.Range(0, ClassNames.Count).Sum(p => Confusion[c, p]) > 0)];
            return present.Length == 0 ? 0 : present.Average(F1);
        }
    }

    /// <summary>
    /// Runs <paramref name="model"/> over each sequence with the streaming path (one <see cref="RecurrentModel.Step"/>
    /// per input, as the live engine does) and scores the class at the last step; bidirectional models are scored
    /// offline on the whole sequence.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="data">Sequences (already normalised as the model expects).</param>
    /// <param name="classNames">Class labels.</param>
    /// <returns>The metrics.</returns>
    public static ClassificationMetrics Evaluate(RecurrentModel model, IReadOnlyList<LabeledSequence> data, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(classNames);
        int classes = model.ClassCount;
        var confusion = new int[classes, classes];
        int[] correctAt = new int[10];
        double logLoss = 0;
        foreach (LabeledSequence s in data)
        {
            float[] probabilities = new float[s.Steps * classes];
            if (model.Architecture.IsStreamable)
            {
                RecurrentState state = model.CreateState();
                for (int t = 0; t < s.Steps; t++)
                {
                    model.Step(state, s.Values.AsSpan(t * model.InputSize, model.InputSize), probabilities.AsSpan(t * classes, classes));
                }
            }
            else
            {
                model.Predict(s.Values, s.Steps, probabilities);
            }

            int predicted = ArgMax(probabilities.AsSpan((s.Steps - 1) * classes, classes));
            confusion[s.Label, predicted]++;
            logLoss -= Math.Log(Math.Max(probabilities[((s.Steps - 1) * classes) + s.Label], 1e-12));
            for (int decile = 1; decile <= 10; decile++)
            {
                int t = Math.Max(1, (int)Math.Ceiling(s.Steps * decile / 10.0)) - 1;
                correctAt[decile - 1] += ArgMax(probabilities.AsSpan(t * classes, classes)) == s.Label ? 1 : 0;
            }
        }

        return new ClassificationMetrics(confusion, classNames, [.. correctAt.Select(c => data.Count == 0 ? 0 : (double)c / data.Count)])
        {
            LogLoss = data.Count == 0 ? double.NaN : logLoss / data.Count,
        };
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
