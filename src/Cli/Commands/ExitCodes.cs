namespace ZonLb.Cli.Commands;

/// <summary>Process exit codes.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The data path failed while running.</summary>
    public const int RuntimeError = 1;
    /// <summary>Bad configuration, or the host does not match it (missing interface, attach refused): nothing is attached.</summary>
    public const int ConfigError = 2;
}
