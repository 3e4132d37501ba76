namespace ZonLb.Engine.Diagnostics;

/// <summary>
/// Faults the tests inject to prove that zonlb-afxdp cleans up after errors, chosen by the environment variable
/// ZONLB_INJECT_FAULT (never set in production): "worker" makes the first worker throw once it has received
/// a frame; "unhandled" makes a background thread throw an unhandled exception once it has; "hang" makes the
/// first worker stop coming round its loop (it sleeps for ever) once it has (the watchdog's test).
/// </summary>
internal static class FaultInjection
{
    public static readonly string? Mode = Environment.GetEnvironmentVariable("ZONLB_INJECT_FAULT");

    public static bool Worker => Mode == "worker";

    public static bool Unhandled => Mode == "unhandled";

    public static bool Hang => Mode == "hang";
}
