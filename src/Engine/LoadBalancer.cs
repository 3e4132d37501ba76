using System.Net;
using ZonLb.Engine.Balancing;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Diagnostics;
using ZonLb.Engine.Runtime;
using ZonLb.Native.Abi;
using ZonLb.Native.Bpf;

namespace ZonLb.Engine;

/// <summary>
/// A running load balancer: the steering XDP program attached to every configured interface, AF_XDP sockets
/// on every queue, the worker threads that translate frames, and the health checker. This is the library's
/// entry point; <c>zonlb-afxdp run</c> is one user of it. Interfaces, routes and neighbours are those of the
/// network namespace of the thread that calls <see cref="Start"/> (the workers inherit it); run the program
/// in that namespace (<c>ip netns exec</c>), and call <see cref="Dispose"/> and the backend and reload methods
/// from it too. Needs root, or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON and CAP_IPC_LOCK.
/// </summary>
/// <example>
/// <code>
/// var config = new LoadBalancerConfig();
/// config.Interfaces.Add(new InterfaceConfig { Name = "lbc" });
/// config.Interfaces.Add(new InterfaceConfig { Name = "lbs" });
/// var web = new ServiceConfig { Name = "web", Vip = IPAddress.Parse("10.10.0.1"), Protocol = IpProtocol.Tcp, Port = 80 };
/// web.Backends.Add(new BackendConfig { Address = IPAddress.Parse("10.20.0.2"), Port = 8080 });
/// config.Services.Add(web);
/// using var lb = LoadBalancer.Start(config);
/// lb.BackendStateChanged += (_, e) => Console.WriteLine($"{e.Service} {e.Address}:{e.Port} {e.State}");
/// var stats = await lb.GetStatsAsync();
/// </code>
/// </example>
public sealed class LoadBalancer : IDisposable
{
    private readonly Dataplane _dp;
    private readonly HealthChecker _health;
    private readonly Timer _monitor;
    private readonly Action<string> _log;
    private readonly long[] _dropsSeen = new long[DropReasonNames.Count];
    private readonly Dictionary<(string, int), XdpStatistics> _socketsSeen = new();
    private int _monitoring;
    private int _disposed;

    private LoadBalancer(Dataplane dp, Action<string> log)
    {
        _dp = dp;
        _log = log;
        _dp.BackendChanged = change => Raise(BackendStateChanged, change);
        _health = new HealthChecker(dp, log);
        _monitor = new Timer(_ => Monitor(), null, 1000, 1000);
    }

    /// <summary>
    /// Sets up and starts the data path for <paramref name="config"/>: resolves every backend's SNAT address
    /// and next hop, creates the sockets, attaches the XDP program and starts the workers and health checks.
    /// Nothing stays attached when it throws.
    /// </summary>
    /// <param name="config">What to serve (the model <c>zonlb.toml</c> maps onto; <see cref="ConfigLoader"/> reads one).</param>
    /// <param name="log">Receives one line per notable event (attach, backend changes, warnings); none when null.</param>
    /// <exception cref="ZonLb.Native.Interop.NativeException">A system call failed (the message carries the errno text).</exception>
    /// <exception cref="InvalidOperationException">The host cannot serve the configuration (missing interface, no route to a backend...).</exception>
    public static LoadBalancer Start(LoadBalancerConfig config, Action<string>? log = null)
    {
        var sink = log ?? (_ => { });
        var dp = Dataplane.Start(config, sink);
        try
        {
            return new LoadBalancer(dp, sink);
        }
        catch
        {
            dp.Dispose();
            throw;
        }
    }

    /// <summary>The configuration in force (changed by <see cref="ReloadAsync"/> and backend changes).</summary>
    public LoadBalancerConfig Config => _dp.Config;

    /// <summary>True while the workers run; false after <see cref="Stop"/> or a failure of the data path.</summary>
    public bool IsRunning => _dp.IsRunning;

    /// <summary>What stopped the data path, when it failed; null otherwise.</summary>
    public Exception? Fault => _dp.Fault;

    /// <summary>Every worker came round its loop within engine.worker_stall_ms (what systemd's watchdog is told).</summary>
    public bool WorkersAlive => _dp.WorkersAlive;

    /// <summary>A backend went up or down (health checks) or was added, removed, disabled or enabled by a caller.
    /// Raised on a thread-pool thread, never on a worker.</summary>
    public event EventHandler<BackendStateChangedEventArgs>? BackendStateChanged;

    /// <summary>New flows were dropped because a worker's connection table was full; raised at most once a
    /// second while it lasts, with the number dropped since the last time.</summary>
    public event EventHandler<ConnectionTableFullEventArgs>? ConnectionTableFull;

    /// <summary>A resource ran short in the last second (socket ring counters that grew, NAT ports, frame pool,
    /// TX ring...), with its likely cause and remedy; raised at most once a second per cause.</summary>
    public event EventHandler<string>? Warning;

    /// <summary>The counters of the whole data path now (the workers' sums; read without stopping them).</summary>
    public CounterSnapshot ReadCounters() => new(_dp.Counters, _dp.ActiveConnections, _dp.FreeFrames, _dp.TotalFrames);

    /// <summary>The XDP program's own counters (seen, redirected, passed, no_socket), summed over CPUs.</summary>
    public IReadOnlyDictionary<string, ulong> ReadXdpCounters() => new Dictionary<string, ulong>
    {
        ["seen"] = _dp.XdpCounter(XdpProgramCounter.Seen),
        ["redirected"] = _dp.XdpCounter(XdpProgramCounter.Redirected),
        ["passed"] = _dp.XdpCounter(XdpProgramCounter.Passed),
        ["no_socket"] = _dp.XdpCounter(XdpProgramCounter.NoSocket),
    };

    /// <summary>Version, uptime, interfaces, connection and frame counts.</summary>
    public Task<StatusReport> GetStatusAsync() => _dp.GetStatus();

    /// <summary>Every counter: global, per worker, socket, interface, service and backend, and drops by reason.</summary>
    public Task<StatsReport> GetStatsAsync() => _dp.GetStats();

    /// <summary>A snapshot of the connection table (all services, or one), at most <paramref name="limit"/> entries.</summary>
    public async Task<IReadOnlyList<ConnectionReport>> GetConnectionsAsync(string? service = null, int limit = 1000) =>
        await _dp.ListConnections(service, limit);

    /// <summary>Forgets every connection (of one service, or all); returns how many.</summary>
    public Task<int> FlushConnectionsAsync(string? service = null) => _dp.FlushConnections(service);

    /// <summary>The next-hop cache: destinations, egress interfaces, neighbours' MACs.</summary>
    public async Task<IReadOnlyList<NextHopReport>> GetNextHopsAsync() => await _dp.ListNextHops();

    /// <summary>Adds a backend to a running service (its SNAT address and route are resolved now); new flows
    /// start to reach it. Returns what was done.</summary>
    public Task<string> AddBackendAsync(string service, IPAddress address, ushort? port = null, int weight = 1) =>
        _dp.ChangeBackend("add", service, address, port, weight);

    /// <summary>Removes a backend: no new flows; its connections drain.</summary>
    public Task<string> RemoveBackendAsync(string service, IPAddress address, ushort? port = null) =>
        _dp.ChangeBackend("remove", service, address, port);

    /// <summary>Takes a backend out of new-flow selection (its connections keep working) until enabled again.</summary>
    public Task<string> DisableBackendAsync(string service, IPAddress address, ushort? port = null) =>
        _dp.ChangeBackend("disable", service, address, port);

    /// <summary>Puts a disabled backend back into new-flow selection.</summary>
    public Task<string> EnableBackendAsync(string service, IPAddress address, ushort? port = null) =>
        _dp.ChangeBackend("enable", service, address, port);

    /// <summary>Applies a new configuration without detaching XDP or dropping established connections: services
    /// and backends are added, removed and changed. Interfaces and engine sizes cannot change this way.
    /// Returns a summary; throws (changing nothing) when the configuration cannot be applied.</summary>
    public Task<string> ReloadAsync(LoadBalancerConfig next) => _dp.Reload(next);

    /// <summary>Stops the workers (frames in flight are finished or dropped) and accounts for every UMEM frame;
    /// the interfaces stay attached until <see cref="Dispose"/>.</summary>
    public FrameAccount Stop()
    {
        _monitor.Change(Timeout.Infinite, Timeout.Infinite);
        _health.Dispose();
        _dp.Stop();
        return _dp.AccountFrames();
    }

    /// <summary>Stops everything, detaches the XDP program from every interface and frees the sockets and UMEM.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _monitor.Dispose();
        _health.Dispose();
        _dp.Dispose();
    }

    internal Dataplane Dataplane => _dp;

    private void Raise<T>(EventHandler<T>? handler, T args)
    {
        if (handler == null)
            return;
        ThreadPool.QueueUserWorkItem(_ =>
        {
            try
            {
                handler(this, args);
            }
            catch (Exception e)
            {
                _log($"warning: an event handler threw: {e.Message}");
            }
        });
    }

    /// <summary>Once a second: drop reasons that mean exhaustion, and socket counters, that grew.</summary>
    private void Monitor()
    {
        if (Interlocked.Exchange(ref _monitoring, 1) != 0 || !_dp.IsRunning)
        {
            Volatile.Write(ref _monitoring, 0);
            return;
        }
        try
        {
            var c = _dp.Counters;
            long full = c.Drops(DropReason.ConnectionTableFull), fullGrew = full - _dropsSeen[(int)DropReason.ConnectionTableFull];
            foreach (var (reason, hint) in ExhaustionHints.Rules)
            {
                long now = c.Drops(reason), grew = now - _dropsSeen[(int)reason];
                _dropsSeen[(int)reason] = now;
                if (grew > 0)
                    Raise(Warning, $"{grew} frame(s) dropped as {reason.ToLabel()} in the last interval: {hint}");
            }
            if (fullGrew > 0)
                Raise(ConnectionTableFull, new ConnectionTableFullEventArgs(fullGrew, _dp.ActiveConnections));
            foreach (var (socket, _, stats) in _dp.SocketStatistics())
            {
                var key = (socket.InterfaceName, socket.QueueId);
                if (_socketsSeen.TryGetValue(key, out var before))
                    foreach (var h in SocketHints.Grown(before, stats))
                        Raise(Warning, $"socket {socket.InterfaceName}:{socket.QueueId}: {h}");
                _socketsSeen[key] = stats;
            }
        }
        catch (Exception e) when (e is ZonLb.Native.Interop.NativeException or InvalidOperationException or ObjectDisposedException)
        {
            // never a reason to stop forwarding; the next round tries again
        }
        finally
        {
            Volatile.Write(ref _monitoring, 0);
        }
    }
}

/// <summary>A backend's state changed.</summary>
/// <param name="Service">The service's name.</param>
/// <param name="Address">The backend's address.</param>
/// <param name="Port">The backend's port (0 for ICMP echo).</param>
/// <param name="State">Its state now: up, down (health checks), disabled, removed, weight-0.</param>
/// <param name="Reason">Why: the health check's result, or "operator".</param>
public sealed record BackendStateChangedEventArgs(string Service, IPAddress Address, int Port, string State, string Reason);

/// <summary>New flows were refused because the connection table was full.</summary>
/// <param name="Dropped">New flows dropped since the last event.</param>
/// <param name="ActiveConnections">Connections in the table now.</param>
public sealed record ConnectionTableFullEventArgs(long Dropped, int ActiveConnections);

/// <summary>The data path's counters at one moment.</summary>
public sealed class CounterSnapshot
{
    private readonly EngineCounters _c;

    internal CounterSnapshot(EngineCounters c, int activeConnections, int freeFrames, int totalFrames)
    {
        _c = c;
        ActiveConnections = activeConnections;
        FreeFrames = freeFrames;
        TotalFrames = totalFrames;
    }

    /// <summary>Frames received from the AF_XDP sockets.</summary>
    public long RxPackets => _c.RxPackets;
    /// <summary>Bytes received.</summary>
    public long RxBytes => _c.RxBytes;
    /// <summary>Frames sent.</summary>
    public long TxPackets => _c.TxPackets;
    /// <summary>Bytes sent.</summary>
    public long TxBytes => _c.TxBytes;
    /// <summary>Frames translated toward a backend.</summary>
    public long ToBackend => _c.ToBackend;
    /// <summary>Frames translated back toward a client.</summary>
    public long ToClient => _c.ToClient;
    /// <summary>Connections created.</summary>
    public long NewConnections => _c.NewConnections;
    /// <summary>Connections removed after their idle timeout.</summary>
    public long ExpiredConnections => _c.ExpiredConnections;
    /// <summary>Connections in the tables now.</summary>
    public int ActiveConnections { get; }
    /// <summary>Unassured entries evicted to make room for new flows (a full table or NAT port range).</summary>
    public long EarlyDrops => _c.EarlyDrops;
    /// <summary>NAT ports taken over from closed TCP connections (TIME_WAIT, CLOSE) by new connections.</summary>
    public long NatPortsReused => _c.NatPortsReused;
    /// <summary>Resets sent to end a backend's TIME_WAIT on a NAT port a new connection took over.</summary>
    public long TimeWaitResets => _c.TimeWaitResets;
    /// <summary>Frames received as chains of several UMEM frames (engine.multi_buffer).</summary>
    public long RxMultiBuffer => _c.RxMultiBuffer;
    /// <summary>TCP/UDP checksums completed because the sender left CHECKSUM_PARTIAL.</summary>
    public long PartialChecksumsRepaired => _c.PartialChecksumsRepaired;
    /// <summary>Frames held while their next hop's neighbour was resolved.</summary>
    public long Held => _c.Held;
    /// <summary>Frames passed to the worker that owns their connection.</summary>
    public long HandedOff => _c.HandedOff;
    /// <summary>sendto() calls that asked the kernel to send a TX ring's frames (copy mode sends 32 per call).</summary>
    public long TxKicks => _c.TxKicks;
    /// <summary>TX kicks the kernel answered with an error other than "busy, try again".</summary>
    public long TxKickErrors => _c.TxKickErrors;
    /// <summary>ICMP time-exceeded messages sent.</summary>
    public long IcmpTimeExceededSent => _c.IcmpTimeExceededSent;
    /// <summary>ICMP errors the rate limit held back.</summary>
    public long IcmpRateLimited => _c.IcmpRateLimited;
    /// <summary>ICMP errors not sent because the frame was of a kind never answered (an ICMP error, a later fragment, a
    /// multicast, broadcast, loopback or unspecified source, a group destination).</summary>
    public long IcmpNotAnswered => _c.IcmpNotAnswered;
    /// <summary>ICMP fragmentation-needed / packet-too-big messages sent for packets over the egress MTU.</summary>
    public long IcmpTooBigSent => _c.IcmpTooBigSent;
    /// <summary>ICMP errors about connections (from backends or routers) translated back to the other side.</summary>
    public long IcmpErrorsTranslated => _c.IcmpErrorsTranslated;
    /// <summary>IP fragments after the first, forwarded the way of their datagram's first fragment.</summary>
    public long FragmentsForwarded => _c.FragmentsForwarded;
    /// <summary>UMEM frames in the pool now.</summary>
    public int FreeFrames { get; }
    /// <summary>UMEM frames in all.</summary>
    public int TotalFrames { get; }
    /// <summary>Frames dropped, every reason together.</summary>
    public long TotalDrops => _c.TotalDrops;

    /// <summary>Frames dropped for one reason.</summary>
    public long Drops(DropReason reason) => _c.Drops(reason);

    /// <summary>"reason=n" for every reason with a non-zero count, or "none".</summary>
    public string FormatDrops() => _c.FormatDrops();
}
