using System.Diagnostics;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Routing;
using ZonLb.Engine.Services;
using ZonLb.Native.Bpf;
using ZonLb.Native.Ethtool;
using ZonLb.Native.Netlink;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;


/// <summary>An attached interface: its kernel identity and the AF_XDP sockets bound to its queues.</summary>
internal sealed class Port
{
    public required string Name { get; init; }
    /// <summary>Changes when the interface is deleted and created again.</summary>
    public required int IfIndex { get; set; }
    public required byte[] Mac { get; set; }
    public required XdpAttachMode AttachedMode { get; set; }
    /// <summary>How the program sits on the interface (dispatcher or alone), once attached.</summary>
    public XdpAttachment? Attachment { get; set; }
    /// <summary>The UMEM registration this interface's sockets share (null while the interface is missing).</summary>
    public XskUmem? Umem { get; set; }
    /// <summary>Sockets by queue number.</summary>
    public List<XskSocket> Sockets { get; } = new();
    /// <summary>The interface's first IPv4 address, the source of the ICMP errors we send; unspecified: none.</summary>
    public IpAddr Address { get; set; }
    /// <summary>The interface's first global IPv6 address, the source of the ICMPv6 errors we send; unspecified: none.</summary>
    public IpAddr Address6 { get; set; }
    /// <summary>First XSKMAP slot of this port's sockets.</summary>
    public uint FirstSlot { get; set; }
    /// <summary>The interface is gone (deleted); its sockets are dead until it comes back.</summary>
    public bool Missing { get; set; }
    /// <summary>The interface's MTU: larger packets toward it are answered with ICMP, not sent.</summary>
    public int Mtu { get; set; }
    /// <summary>802.1Q VLAN ids whose tagged frames are accepted (the configuration's vlans).</summary>
    public HashSet<int> Vlans { get; init; } = new();

    /// <summary>Whether a tagged frame's VLAN is one this interface expects.</summary>
    public bool AcceptsVlan(ReadOnlySpan<byte> frame) => Vlans.Count > 0 && Vlans.Contains(VlanTags.Of(frame));
    public bool Down { get; set; }
}

/// <summary>
/// The running data path: the steering program attached to every configured interface (through libxdp), one AF_XDP
/// socket per RX queue, all over one UMEM area (registered once per interface), and `workers` threads (<see cref="Worker"/>), each owning the sockets of its
/// queues, a shard of the connection table and its counters, with no locks on the hot path. Control work never
/// stops the workers (see Dataplane.Control.cs). Dispose stops the workers,
/// detaches every XDP program it attached and closes the sockets.
/// </summary>
internal sealed partial class Dataplane : IDisposable
{
    private LoadBalancerConfig _config;
    private readonly Action<string> _log;
    private readonly List<Port> _ports = new();
    private readonly List<XskSocket> _sockets = new();
    private RouteResolver? _resolver;
    private XdpProgram? _program;
    private Umem? _umem;
    private ServiceRegistry? _registry;
    private Worker[] _workers = Array.Empty<Worker>();
    private volatile bool _stop;
    private readonly XskMapSlots _slots = new();
    private Thread? _linkWatcher;
    private int _alive;
    private int _disposed;

    private Dataplane(LoadBalancerConfig config, Action<string> log)
    {
        _config = config;
        _log = log;
    }

    /// <summary>The configuration in force (replaced by a successful reload).</summary>
    public LoadBalancerConfig Config => _config;

    /// <summary>A snapshot: the sum of every worker's counters.</summary>
    public EngineCounters Counters => EngineCounters.Sum(_workers.Select(w => w.Counters));
    public IReadOnlyList<Port> Ports => _ports;
    internal Worker[] Workers => _workers;
    public int WorkerCount => _workers.Length;
    public int ActiveConnections => _workers.Sum(w => w.Processor.Connections.Count);
    /// <summary>Free frames: in the shared pool and in the workers' own stocks.</summary>
    public int FreeFrames
    {
        get
        {
            int free = _umem?.FreeFrames ?? 0;
            foreach (var w in _workers)
                free += w.CachedFrames;
            return free;
        }
    }
    public int TotalFrames => _umem?.FrameCount ?? 0;
    /// <summary>The first fatal error of a worker, if one stopped on one.</summary>
    public Exception? Fault { get; private set; }
    public bool IsRunning => Volatile.Read(ref _alive) > 0;

    public ulong XdpCounter(XdpProgramCounter c) => _program?.ReadCounter(c) ?? 0;

    /// <summary>Attaches to the configured interfaces and starts forwarding. On any error everything done so
    /// far is undone and the exception says which interface and why.</summary>
    public static Dataplane Start(LoadBalancerConfig config, Action<string>? log = null)
    {
        var dp = new Dataplane(config, log ?? (_ => { }));
        ZonLb.Native.Interop.LibXdpMessages.Sink = dp._log; // libxdp's warnings and notes, in our log
        try
        {
            dp.Setup();
            return dp;
        }
        catch
        {
            dp.Dispose();
            throw;
        }
    }

    private void Setup()
    {
        var o = _config.Engine;
        int workers = o.Workers;
        using var nl = new RtNetlink();
        // 1. Every interface must exist, carry no XDP program and have a queue for every worker.
        var links = new List<(InterfaceConfig Cfg, LinkInfo Link, int Queues)>();
        foreach (var ic in _config.Interfaces)
        {
            var link = nl.GetLink(ic.Name) ?? throw new InvalidOperationException(
                $"interface {ic.Name} (from {_config.Source}) does not exist in this network namespace");
            if (link.Mac.GetAddressBytes().Length != 6)
                throw new InvalidOperationException($"interface {ic.Name} is not an Ethernet interface");
            if (!link.IsUp)
                _log($"warning: interface {ic.Name} is down");
            TakeBackStaleProgram(ic.Name, link.Index);
            int queues = EthtoolChannels.GetRxQueueCount(ic.Name);
            if (queues < workers)
                throw new InvalidOperationException(
                    $"interface {ic.Name} has {queues} RX queue(s) but engine.workers = {workers}: every worker needs a queue on every " +
                    $"interface (raise the queue count, e.g. 'ethtool -L {ic.Name} rx {workers} tx {workers}', or lower workers)");
            links.Add((ic, link, queues));
        }
        if (o.CpuAffinity.Count > 0 && o.CpuAffinity.Count != workers)
            throw new InvalidOperationException($"engine.cpu_affinity names {o.CpuAffinity.Count} CPU(s) for {workers} worker(s)");

        _registry = new ServiceRegistry(workers, o.NatPortMin, o.NatPortMax);
        foreach (var sc in _config.Services)
            _registry.Add(ServiceResolver.Resolve(sc, o, nl, workers));
        _publisher = new ServicePublisher(_registry.Snapshot());

        _program = XdpProgram.Open(multiBuffer: o.MultiBuffer);
        _umem = new Umem(o.FrameCount, o.FrameSize);

        // 2. Sockets: one per RX queue of every interface, on the interface's registration of the UMEM area.
        foreach (var (ic, link, queues) in links)
        {
            if (!_slots.TryTake(queues, out uint slot))
                throw new InvalidOperationException(
                    $"interface {ic.Name}: {queues} queue(s) do not fit the {XdpProgram.MaxSockets - _slots.Taken} AF_XDP socket slot(s) left of {XdpProgram.MaxSockets}");
            var port = new Port
            {
                Name = ic.Name, IfIndex = link.Index, Mac = link.Mac.GetAddressBytes(), AttachedMode = ic.XdpMode, FirstSlot = slot,
                Mtu = link.Mtu, Vlans = ic.Vlans.ToHashSet(),
            };
            _ports.Add(port);
            var addresses = nl.GetIPv4Addresses(link.Index);
            port.Address = addresses.Count > 0 ? IpAddr.From(addresses[0]) : default;
            var addresses6 = nl.GetIPv6Addresses(link.Index);
            port.Address6 = addresses6.Count > 0 ? IpAddr.From(addresses6[0]) : default;
            CreateSockets(port, ic, queues);
        }

        // 3. Workers, each with its own pipeline shard; routes and neighbours come from the resolver's thread.
        var portList = _ports.Select(p => (p.IfIndex, p.Mac)).ToList();
        _workers = new Worker[workers];
        _resolver = new RouteResolver(WakeWorkers, o.NeighborWaitMilliseconds, _log);
        for (int w = 0; w < workers; w++)
        {
            var routes = new KernelRouteSource(_resolver, o.NeighborCacheSeconds * 1000L);
            var processor = new PacketProcessor(_publisher.Current, w, portList, routes, o, new EngineCounters());
            foreach (var port in _ports)
                processor.SetMtu(port.IfIndex, port.Mtu);
            processor.SetVlans(VlanInterfaces(nl));
            _workers[w] = new Worker(w, this, _umem, processor, _ports, o.CpuAffinity.Count > 0 ? o.CpuAffinity[w] : -1);
        }

        // 4. Fill rings, then attach (libxdp loads the program then), then what to steer: no frame is steered
        //    before a socket can take it, and until the maps name a service every frame passes.
        foreach (var w in _workers)
            w.FillAll();
        foreach (var port in _ports)
        {
            var attachment = _program.Attach(port.Name, port.IfIndex, _config.Interfaces.First(i => i.Name == port.Name).XdpMode);
            port.AttachedMode = attachment.Mode;
            port.Attachment = attachment;
            _log($"attached to {port.Name} (ifindex {port.IfIndex}, {attachment}, {port.Sockets.Count} queue(s), " +
                 $"{(port.Sockets[0].ZeroCopy ? "zero-copy" : "copy")} AF_XDP)");
        }
        foreach (var port in _ports)
            SteerSockets(port);
        foreach (var s in _publisher.Current.Services)
            _program.AddService(s.Vip.ToIPAddress(), s.Protocol.WireNumber(s.Vip), s.Port);
        SteerNatAddresses();
        foreach (var s in _publisher.Current.Services)
            foreach (var b in s.Backends)
                _log($"service {s.Name}: {s.Vip} {s.Protocol.ToString().ToLowerInvariant()} {s.Port} -> " +
                     $"{b.Info.Ip.WithPort(b.Info.Port)} ({(s.Dsr ? "direct server return" : $"snat {b.Info.Snat}")}, weight {b.Info.Weight})");

        _alive = workers;
        foreach (var w in _workers)
        {
            var worker = w;
            w.Thread = new Thread(() => WorkerMain(worker)) { Name = $"zonlb-worker-{w.Index}", IsBackground = true };
            w.Thread.Start();
        }
        foreach (var w in _workers)
        {
            w.Placed.Wait();
            if (w.PlacementError != null)
                throw new InvalidOperationException($"worker {w.Index}: {w.PlacementError.Message}", w.PlacementError);
        }
        _log($"{workers} worker(s){(o.CpuAffinity.Count > 0 ? $" pinned to CPU(s) {string.Join(",", o.CpuAffinity)}" : "")}, scheduled " +
             string.Join("; ", _workers.Select(w => w.Scheduling).Distinct()));
        _linkWatcher = new Thread(WatchLinks) { Name = "zonlb-links", IsBackground = true };
        _linkWatcher.Start();
        StartWatchdog();
    }

    /// <summary>
    /// An XDP program already on an interface: others' programs attached through libxdp's dispatcher stay (ours joins
    /// them); a zonlb_xdp whose process is gone (SIGKILL, OOM) is detached, from the dispatcher or alone; one of a
    /// running zonlb-afxdp, or a program attached without the dispatcher, is refused, saying what to do.
    /// </summary>
    private void TakeBackStaleProgram(string name, int ifIndex)
    {
        var (dispatcher, programs) = XdpProgram.Inspect(ifIndex);
        foreach (var p in programs)
        {
            if (string.IsNullOrEmpty(p.Name))
                throw new InvalidOperationException(
                    $"interface {name} already has an XDP program attached (id {p.Id}) that this process may not inspect " +
                    $"(reading another program's name needs CAP_SYS_ADMIN): grant CAP_SYS_ADMIN so that zonlb-afxdp can tell whether it " +
                    $"is a stale one of its own, or remove it with 'ip link set dev {name} xdp off'");
            if (!p.IsOurs)
            {
                if (!dispatcher)
                {
                    var d = XdpDispatcher.Availability();
                    string how = d.Usable ? "load that program with xdp-loader, which uses it" : $"here it is unavailable: {d.Reason} ({d.Remedy})";
                    throw new InvalidOperationException(
                        $"interface {name} already has an XDP program attached without libxdp's dispatcher: '{p.Name}' (id {p.Id}); " +
                        $"zonlb-afxdp shares an interface only through the dispatcher ({how}), and does not replace it " +
                        $"('ip link set dev {name} xdp off' removes it)");
                }
                continue; // shares the interface with us through the dispatcher
            }
            if (p.OwnerAlive)
                throw new InvalidOperationException(
                    $"interface {name} already has an XDP program attached: zonlb_xdp (id {p.Id}) of the running zonlb-afxdp pid {p.OwnerPid}; stop that one first");
            XdpProgram.DetachStale(name, ifIndex, p.Id);
            _log($"replaced a stale zonlb_xdp (id {p.Id}) on {name}, left by pid {p.OwnerPid} which is gone");
        }
    }

    /// <summary>Registers the UMEM area for an interface and binds a socket to each of its queues.</summary>
    private void CreateSockets(Port port, InterfaceConfig ic, int queues)
    {
        var o = _config.Engine;
        port.Umem = XskUmem.Register(_umem!, (uint)o.RingSize, port.Name);
        for (int q = 0; q < queues; q++)
        {
            var s = XskSocket.Create(port.Umem, ic.Name, port.IfIndex, q, (uint)o.RingSize, ic.XskMode, o.MultiBuffer);
            if (o.BusyPollMicroseconds > 0)
                s.EnableBusyPoll(o.BusyPollMicroseconds, 64);
            _sockets.Add(s);
            port.Sockets.Add(s);
        }
    }

    /// <summary>Frames arriving on a port's queue q go to XSKMAP slot FirstSlot + q, its socket for that queue.</summary>
    private void SteerSockets(Port port)
    {
        for (int q = 0; q < port.Sockets.Count; q++)
            _program!.SetSocket(port.FirstSlot + (uint)q, port.Sockets[q].Fd);
        _program!.SetInterfaceSlots(port.IfIndex, port.FirstSlot, port.Sockets.Count);
    }

    /// <summary>Wakes every worker (new route or neighbour answers for their held frames).</summary>
    private void WakeWorkers()
    {
        foreach (var w in _workers)
            w.Wakeup.Signal();
    }

    private void WorkerMain(Worker w)
    {
        try
        {
            w.Run(() => _stop);
        }
        catch (Exception e)
        {
            Fault ??= e;
            _log($"error: worker {w.Index} stopped: {e}");
        }
        finally
        {
            Interlocked.Decrement(ref _alive);
        }
    }

    // ---------------- lifecycle ----------------

    /// <summary>Stops the workers and waits for them.</summary>
    public void Stop()
    {
        _stop = true;
        StopWatchdog();
        foreach (var w in _workers)
        {
            w.Wakeup.Signal();
            if (w.Thread != null && w.Thread.IsAlive && Thread.CurrentThread != w.Thread && !w.Thread.Join(WorkerStopTimeout))
            {
                _abandoned = true; // a stalled worker: it may wake and touch its rings, so they are left mapped
                _log($"error: worker {w.Index} did not stop within {WorkerStopTimeout.TotalSeconds} s; its sockets are left open until the process ends");
            }
        }
        if (_linkWatcher != null && _linkWatcher.IsAlive && Thread.CurrentThread != _linkWatcher)
            _linkWatcher.Join();
    }

    /// <summary>How long Stop waits for each worker to leave its loop.</summary>
    private static readonly TimeSpan WorkerStopTimeout = TimeSpan.FromSeconds(3);

    /// <summary>A worker did not stop (stalled): its rings and the UMEM stay mapped (the process is ending).</summary>
    private bool _abandoned;

    /// <summary>Counts where every frame is. Only valid once the workers have stopped; waits briefly for the
    /// kernel to complete frames it is still sending.</summary>
    public FrameAccount AccountFrames()
    {
        if (IsRunning && !_abandoned) // a stalled worker's frames are counted where they are, or as unaccounted
            throw new InvalidOperationException("stop the data path before accounting for its frames");
        var umem = _umem!;
        for (int attempt = 0; attempt < 50; attempt++)
        {
            long tx = 0;
            foreach (var s in _sockets)
                tx += s.Tx.Pending;
            if (Count(umem).Unaccounted == 0 && tx == 0)
                break;
            Thread.Sleep(10); // frames the kernel took from a TX ring reach the completion ring when their skb is freed
        }
        return Count(umem);
    }

    private FrameAccount Count(Umem umem)
    {
        long fill = 0, rx = 0, tx = 0, comp = 0, held = 0;
        foreach (var s in _sockets)
        {
            fill += s.Fill.Pending;
            rx += s.Rx.Pending;
            tx += s.Tx.Pending;
            comp += s.Completion.Pending;
        }
        int free = umem.FreeFrames;
        foreach (var w in _workers)
        {
            held += w.HeldFrames + w.InboxFrames;
            free += w.CachedFrames; // free, in the worker's own stock
        }
        return new FrameAccount(umem.FrameCount, free, fill, rx, tx, comp, held);
    }

    public void Dispose()
    {
        // Concurrent callers (an unhandled-exception handler on two threads) wait until the first has detached.
        lock (_disposeLock)
        {
            if (_disposed != 0)
                return;
            _disposed = 1;
            DisposeCore();
        }
    }

    private readonly object _disposeLock = new();

    private void DisposeCore()
    {
        Stop();
        _resolver?.Dispose(); // before the workers' wakeups go: it signals them
        // Detach first so the kernel stops steering frames to sockets that are about to close.
        _program?.Dispose();
        if (_abandoned)
            return; // a worker that never stopped may still touch the rings and the UMEM: leave them to the process's end
        foreach (var s in _sockets)
            s.Dispose();
        _sockets.Clear();
        foreach (var port in _ports)
        {
            port.Umem?.Dispose(); // once its sockets are gone
            port.Umem = null;
        }
        foreach (var w in _workers)
            w.Wakeup.Dispose();
        _umem?.Dispose();
    }
}
