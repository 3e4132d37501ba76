namespace ZonLb.Cli.Commands;

/// <summary>Process exit codes.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The data path failed while running.</summary>
    public const int RuntimeError = 1;
    /// <summary>Bad configuration, or the host does not match it (missing interface, attach refused): nothing is attached.</summary>
    public const int ConfigError = 2;

    /// <summary>Each code and what it means, for the man page.</summary>
    public static IReadOnlyList<(int Code, string Meaning)> Meanings { get; } = new[]
    {
        (Ok, "Success; for run, stopped by SIGINT or SIGTERM after detaching everything."),
        (RuntimeError, "The data path failed while running (run), the instance could not be reached or refused the request (control commands), or trace could not attach."),
        (ConfigError, "A bad configuration or command line, or a host that does not match it (a missing interface, an attach the kernel refused); nothing is left attached."),
    };
}
