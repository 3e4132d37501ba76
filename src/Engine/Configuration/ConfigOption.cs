using System.Globalization;

namespace ZonLb.Engine.Configuration;

/// <summary>Whether `reload` (or SIGHUP) applies a changed key to a running instance.</summary>
public enum OptionReload
{
    /// <summary>A reload applies it.</summary>
    Applies,
    /// <summary>A restart is needed; a reload keeps the running value and says so.</summary>
    Restart,
}

/// <summary>
/// One key of the configuration file: where it goes, its type, default, range, whether reload applies it, and one
/// line of documentation. <see cref="ConfigOptions.All"/> is the single table the loader's key checks, the
/// writer's [engine] section, the man page zonlb.toml(5) and docs/configuration.md are all made from.
/// </summary>
public sealed class ConfigOption
{
    internal ConfigOption(string section, string key, string type, string defaultValue, OptionReload reload, string doc)
    {
        Section = section;
        Key = key;
        Type = type;
        Default = defaultValue;
        Reload = reload;
        Doc = doc;
    }

    /// <summary>The table the key belongs to: "" (top level), "interface", "service", "service.health",
    /// "service.backend" or "engine".</summary>
    public string Section { get; }
    /// <summary>The key's name.</summary>
    public string Key { get; }
    /// <summary>Its TOML type, in words ("integer", "string", "boolean", "address", "list of integers", or the
    /// allowed strings, "tcp | udp | icmp").</summary>
    public string Type { get; }
    /// <summary>The default as it would be written in the file, or a sentence when there is none.</summary>
    public string Default { get; }
    /// <summary>The smallest value allowed (integers and seconds), or null.</summary>
    public double? Min { get; private init; }
    /// <summary>The largest value allowed, or null.</summary>
    public double? Max { get; private init; }
    /// <summary>Whether a reload applies a change of this key.</summary>
    public OptionReload Reload { get; }
    /// <summary>What the key does, in one or two sentences.</summary>
    public string Doc { get; }
    /// <summary>Whether the key must be present.</summary>
    public bool Required { get; private init; }

    /// <summary>The range in words ("1-65535"), or null.</summary>
    public string? Range => Min is double lo && Max is double hi
        ? string.Create(CultureInfo.InvariantCulture, $"{lo}-{hi}")
        : null;

    /// <summary>[engine] integers: how the key reads and sets <see cref="EngineOptions"/>.</summary>
    internal Func<EngineOptions, int>? GetInt { get; private init; }
    internal Action<EngineOptions, int>? SetInt { get; private init; }
    /// <summary>[engine] booleans.</summary>
    internal Func<EngineOptions, bool>? GetBool { get; private init; }
    internal Action<EngineOptions, bool>? SetBool { get; private init; }
    /// <summary>An [engine] default that depends on other keys read before it (frame_size on multi_buffer).</summary>
    internal Func<EngineOptions, int>? DefaultFrom { get; private init; }

    internal static ConfigOption Text(string section, string key, string type, string def, OptionReload reload, string doc, bool required = false) =>
        new(section, key, type, def, reload, doc) { Required = required };

    internal static ConfigOption Number(string section, string key, string type, string def, double min, double max, OptionReload reload, string doc,
        bool required = false) =>
        new(section, key, type, def, reload, doc) { Min = min, Max = max, Required = required };

    internal static ConfigOption EngineInt(string key, int min, int max, Func<EngineOptions, int> get, Action<EngineOptions, int> set, string doc,
        Func<EngineOptions, int>? defaultFrom = null, string? defaultText = null) =>
        new("engine", key, "integer", defaultText ?? get(new EngineOptions()).ToString(CultureInfo.InvariantCulture), OptionReload.Restart, doc)
        {
            Min = min, Max = max, GetInt = get, SetInt = set, DefaultFrom = defaultFrom,
        };

    internal static ConfigOption EngineBool(string key, Func<EngineOptions, bool> get, Action<EngineOptions, bool> set, string doc) =>
        new("engine", key, "boolean", get(new EngineOptions()) ? "true" : "false", OptionReload.Restart, doc) { GetBool = get, SetBool = set };
}
