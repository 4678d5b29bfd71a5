namespace Signal.Engine.Mqtt;

/// <summary>MQTT topic filter rules (MQTT 3.1.1 §4.7, MQTT 5 §4.7), checked before a filter is sent to a broker.</summary>
public static class MqttTopics
{
    /// <summary>Why <paramref name="filter"/> is not a valid topic filter, or null when it is.</summary>
    /// <param name="filter">A topic filter such as <c>sensors/+/vib</c> or <c>sensors/#</c>.</param>
    /// <returns>The problem, or null.</returns>
    public static string? FilterProblem(string? filter)
    {
        if (string.IsNullOrEmpty(filter))
        {
            return "a topic filter cannot be empty";
        }

        if (System.Text.Encoding.UTF8.GetByteCount(filter) > 65535)
        {
            return "a topic filter is at most 65,535 bytes";
        }

        if (filter.Contains('\0', StringComparison.Ordinal))
        {
            return "a topic filter cannot hold the NUL character";
        }

        string[] levels = filter.Split('/');
        for (int i = 0; i < levels.Length; i++)
        {
            string level = levels[i];
            if (level.Contains('#', StringComparison.Ordinal) && (level != "#" || i != levels.Length - 1))
            {
                return $"'#' must be a whole level and the last one ('{filter}' has it in level {i + 1} of {levels.Length}; did you mean '{string.Join('/', levels.Take(i + 1))}' or '+'?)";
            }

            if (level.Contains('+', StringComparison.Ordinal) && level != "+")
            {
                return $"'+' must be a whole level ('{filter}' has '{level}')";
            }
        }

        return null;
    }
}
