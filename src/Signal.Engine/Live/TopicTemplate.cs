namespace Signal.Engine.Live;

/// <summary>
/// Maps a topic to a stream id by a template such as <c>sensors/{device}/{sensor}</c>: each <c>{name}</c> level
/// captures that level, <c>+</c> matches any level without capturing, other levels must match exactly; the stream
/// id is the captured levels joined by <c>/</c> (the whole topic when the template captures nothing).
/// </summary>
public sealed class TopicTemplate
{
    private readonly string[] _levels;

    /// <summary>Parses a template.</summary>
    /// <param name="template">The template.</param>
    /// <exception cref="ArgumentException">It is empty or holds <c>#</c> other than as the last level.</exception>
    public TopicTemplate(string template)
    {
        ArgumentException.ThrowIfNullOrEmpty(template);
        _levels = template.Split('/');
        for (int i = 0; i < _levels.Length; i++)
        {
            if (_levels[i] == "#" && i != _levels.Length - 1)
            {
                throw new ArgumentException($"topicTemplate: '#' must be the last level of '{template}'.", nameof(template));
            }
        }

        Template = template;
        Captures = _levels.Count(IsCapture);
    }

    /// <summary>The template text.</summary>
    public string Template { get; }

    /// <summary>The number of captured levels.</summary>
    public int Captures { get; }

    /// <summary>The subscription filter matching the template (<c>{name}</c> → <c>+</c>).</summary>
    public string Filter => string.Join('/', _levels.Select(l => IsCapture(l) ? "+" : l));

    /// <summary>A name made safe as one topic level: '/', '+', '#' and spaces become '_'.</summary>
    /// <param name="name">Any name (a file name, a stream name).</param>
    /// <returns>The level.</returns>
    public static string Level(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return string.Concat(name.Select(c => c is '/' or '+' or '#' or ' ' ? '_' : c));
    }

    /// <summary>Reads the stream id from a topic.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="stream">The stream id.</param>
    /// <returns>False when the topic does not match the template.</returns>
    /// <remarks>Walks the topic without splitting it; when the captured levels are adjacent (the usual case) the id is one substring.</remarks>
    public bool TryMatch(string topic, out string stream) => Match(topic, readId: true, out stream);

    /// <summary>Whether a topic matches the template, without reading the stream id (routing between templates).</summary>
    /// <param name="topic">The topic.</param>
    /// <returns>True when it matches.</returns>
    public bool Matches(string topic) => Match(topic, readId: false, out _);

    private bool Match(string topic, bool readId, out string stream)
    {
        ArgumentNullException.ThrowIfNull(topic);
        stream = string.Empty;
        int firstCapture = -1, lastCaptureEnd = -1, captured = 0, start = 0;
        bool contiguous = true, previousCaptured = false;
        for (int i = 0; i < _levels.Length; i++)
        {
            if (_levels[i] == "#")
            {
                if (Captures == 0)
                {
                    stream = topic;
                }
                else
                {
                    break;
                }

                return true;
            }

            if (start > topic.Length)
            {
                return false; // the topic has fewer levels than the template
            }

            int slash = topic.IndexOf('/', start);
            int end = slash < 0 ? topic.Length : slash;
            ReadOnlySpan<char> part = topic.AsSpan(start, end - start);
            bool capture = IsCapture(_levels[i]);
            if (capture)
            {
                if (part.IsEmpty)
                {
                    return false;
                }

                contiguous &= captured == 0 || previousCaptured;
                firstCapture = captured++ == 0 ? start : firstCapture;
                lastCaptureEnd = end;
            }
            else if (_levels[i] != "+" && !part.SequenceEqual(_levels[i]))
            {
                return false;
            }

            previousCaptured = capture;
            start = slash < 0 ? topic.Length + 1 : slash + 1;
        }

        if (_levels[^1] != "#" && start <= topic.Length)
        {
            return false; // the topic has more levels than the template
        }

        stream = Captures == 0 ? topic
            : !readId ? string.Empty
            : contiguous ? topic.Substring(firstCapture, lastCaptureEnd - firstCapture)
            : string.Join('/', Pieces(topic));
        return true;
    }

    private IEnumerable<string> Pieces(string topic)
    {
        string[] parts = topic.Split('/');
        for (int i = 0; i < _levels.Length && i < parts.Length; i++)
        {
            if (IsCapture(_levels[i]))
            {
                yield return parts[i];
            }
        }
    }

    private static bool IsCapture(string level) => level.Length > 2 && level[0] == '{' && level[^1] == '}';
}
