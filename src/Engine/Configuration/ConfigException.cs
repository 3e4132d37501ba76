namespace ZonLb.Engine.Configuration;

/// <summary>A configuration error; the message names the file, the key and the value.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>A configuration error; the message names the file, key and value.</summary>
    public ConfigException(string message) : base(message) { }
}
