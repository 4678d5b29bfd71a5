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

    /// <summary>Reads the stream id from a topic.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="stream">The stream id.</param>
    /// <returns>False when the topic does not match the template.</returns>
    public bool TryMatch(string topic, out string stream)
    {
        ArgumentNullException.ThrowIfNull(topic);
        stream = string.Empty;
        if (Captures == 0)
        {
            stream = topic;
            return Matches(topic.Split('/'));
        }

        string[] parts = topic.Split('/');
        if (!Matches(parts))
        {
            return false;
        }

        stream = string.Join('/', _levels.Select((l, i) => (l, i)).Where(x => IsCapture(x.l)).Select(x => parts[x.i]));
        return true;
    }

    private bool Matches(string[] parts)
    {
        for (int i = 0; i < _levels.Length; i++)
        {
            if (_levels[i] == "#")
            {
                return true;
            }

            if (i >= parts.Length || (_levels[i] != "+" && !IsCapture(_levels[i]) && _levels[i] != parts[i]) || (IsCapture(_levels[i]) && parts[i].Length == 0))
            {
                return false;
            }
        }

        return parts.Length == _levels.Length;
    }

    private static bool IsCapture(string level) => level.Length > 2 && level[0] == '{' && level[^1] == '}';
}
