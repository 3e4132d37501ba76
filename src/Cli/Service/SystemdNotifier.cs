using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace ZonLb.Cli.Service;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram per state change to the Unix socket systemd names in
/// NOTIFY_SOCKET (a path, or an abstract name starting with '@'). Outside systemd (no NOTIFY_SOCKET) every call
/// does nothing. The messages: READY=1 once every interface is attached and forwarding, RELOADING=1 (with
/// MONOTONIC_USEC, as Type=notify-reload requires) and READY=1 around a reload, STOPPING=1 at the start of a stop.
/// </summary>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _target;

    public SystemdNotifier(string? notifySocket = null)
    {
        string? path = notifySocket ?? Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path) || (path[0] != '/' && path[0] != '@'))
            return;
        _target = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>Whether a service manager listens.</summary>
    public bool Enabled => _socket != null;

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");

    public void Reloading() =>
        Send($"RELOADING=1\nMONOTONIC_USEC={Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000)}");

    public void Stopping() => Send("STOPPING=1");

    /// <summary>systemd's watchdog period (WATCHDOG_USEC, set with WatchdogSec= in the unit) when it watches this
    /// process; null when it does not.</summary>
    public TimeSpan? WatchdogPeriod { get; } =
        long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out long usec) && usec > 0 &&
        (Environment.GetEnvironmentVariable("WATCHDOG_PID") is not { Length: > 0 } pid || pid == Environment.ProcessId.ToString())
            ? TimeSpan.FromTicks(usec * 10) : null;

    /// <summary>Tells systemd the service is alive (WATCHDOG=1): sent only while every worker is.</summary>
    public void Watchdog() => Send("WATCHDOG=1");

    public void Status(string status) => Send($"STATUS={status}");

    private void Send(string message)
    {
        if (_socket == null)
            return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), _target!);
        }
        catch (SocketException)
        {
            // systemd gone or the socket not ours to write: a notification is advice, never a reason to stop
        }
    }

    public void Dispose() => _socket?.Dispose();
}
