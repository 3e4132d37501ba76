using System.Diagnostics;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;
using ZonLb.Native.Bpf;
using ZonLb.Native.Ethtool;
using ZonLb.Native.Netlink;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Pipeline;

/// <summary>Where every UMEM frame is: in the pool, lent to the kernel (fill ring), received and not yet
/// processed (RX ring), waiting to be sent (TX ring), sent and not yet completed (completion ring), or held for
/// a neighbour. <see cref="Unaccounted"/> is what none of these explains: a leak, when the data path is idle.</summary>
public readonly record struct FrameAccount(int Total, int Free, long Fill, long Rx, long Tx, long Completion, long Held)
{
    public long Unaccounted => Total - Free - Fill - Rx - Tx - Completion - Held;

    public override string ToString() =>
        $"frames_total={Total} frames_free={Free} frames_fill={Fill} frames_rx={Rx} frames_tx={Tx} " +
        $"frames_completion={Completion} frames_held={Held} frames_unaccounted={Unaccounted}";
}

/// <summary>An attached interface: its kernel identity and the AF_XDP sockets bound to its queues.</summary>
public sealed class Port
{
    public required string Name { get; init; }
    public required int IfIndex { get; init; }
    public required byte[] Mac { get; init; }
    public required XdpAttachMode AttachedMode { get; set; }
    /// <summary>Index of this port's first socket in the dataplane's socket list; its sockets are contiguous.</summary>
    public required int FirstSocket { get; init; }
    public List<XskSocket> Sockets { get; } = new();
}

/// <summary>
/// The running data path: the steering program attached to every configured interface, one AF_XDP socket per
/// RX queue sharing one UMEM, and one worker thread that owns all rings, the frame pool, the connection
/// table and the counters (no locks on the hot path). Dispose stops the worker, detaches every XDP program
/// it attached and closes the sockets.
/// </summary>
public sealed partial class Dataplane : IDisposable
{
    private const int Batch = 64;
    private LoadBalancerConfig _config;
    private readonly Action<string> _log;
    private readonly List<Port> _ports = new();
    private readonly List<XskSocket> _sockets = new();
    private XdpProgram? _program;
    private Umem? _umem;
    private KernelRouteSource? _routes;
    private PacketProcessor? _processor;
    private Thread? _worker;
    private volatile bool _stop;
    private int _disposed;

    private Dataplane(LoadBalancerConfig config, Action<string> log)
    {
        _config = config;
        _log = log;
    }

    /// <summary>The configuration in force (replaced by a successful reload).</summary>
    public LoadBalancerConfig Config => _config;

    public EngineCounters Counters { get; } = new();
    public IReadOnlyList<Port> Ports => _ports;
    public int ActiveConnections => _processor?.Connections.Count ?? 0;
    public int FreeFrames => _umem?.FreeFrames ?? 0;
    public int TotalFrames => _umem?.FrameCount ?? 0;
    /// <summary>Frames lent out: in fill rings, in flight to TX, held for a neighbour.</summary>
    public int FramesInUse => TotalFrames - FreeFrames;
    public int HeldFrames { get; private set; }
    /// <summary>The worker's fatal error, if it stopped on one.</summary>
    public Exception? Fault { get; private set; }
    public bool IsRunning => _worker is { IsAlive: true };

    public ulong XdpCounter(XdpProgramCounter c) => _program?.ReadCounter(c) ?? 0;

    /// <summary>Attaches to the configured interfaces and starts forwarding. On any error everything done so
    /// far is undone and the exception says which interface and why.</summary>
    public static Dataplane Start(LoadBalancerConfig config, Action<string>? log = null)
    {
        var dp = new Dataplane(config, log ?? (_ => { }));
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
        using var nl = new RtNetlink();
        // 1. Every interface must exist before anything is attached.
        var links = new List<(InterfaceConfig Cfg, LinkInfo Link)>();
        foreach (var ic in _config.Interfaces)
        {
            var link = nl.GetLink(ic.Name) ?? throw new InvalidOperationException(
                $"interface {ic.Name} (from {_config.Source}) does not exist in this network namespace");
            if (link.Mac.GetAddressBytes().Length != 6)
                throw new InvalidOperationException($"interface {ic.Name} is not an Ethernet interface");
            if (!link.IsUp)
                _log($"warning: interface {ic.Name} is down");
            uint attached = XdpProgram.QueryAttachedId(link.Index);
            if (attached != 0)
                throw new InvalidOperationException(
                    $"interface {ic.Name} already has an XDP program attached (id {attached}): another zonlb-afxdp, " +
                    $"someone else's program, or a stale one of ours; 'ip link set dev {ic.Name} xdp off' removes it");
            links.Add((ic, link));
        }

        _routes = new KernelRouteSource();
        var services = _config.Services.Select(sc => ServiceResolver.Resolve(sc, o, nl)).ToList();

        _program = XdpProgram.Load();
        _umem = new Umem(o.FrameCount, o.FrameSize);

        // 2. Sockets: one per RX queue of every interface, all sharing the UMEM.
        uint slot = 0;
        foreach (var (ic, link) in links)
        {
            int queues = EthtoolChannels.GetRxQueueCount(ic.Name);
            var port = new Port { Name = ic.Name, IfIndex = link.Index, Mac = link.Mac.GetAddressBytes(), AttachedMode = ic.XdpMode, FirstSocket = _sockets.Count };
            _program.SetInterfaceSlots(link.Index, slot);
            for (int q = 0; q < queues; q++)
            {
                var s = XskSocket.Create(_umem, _sockets.Count == 0 ? null : _sockets[0], ic.Name, link.Index, q,
                    (uint)o.RingSize, ic.XskMode);
                _sockets.Add(s);
                port.Sockets.Add(s);
                _program.SetSocket(slot++, s.Fd);
            }
            _ports.Add(port);
        }

        _processor = new PacketProcessor(services, _ports.Select(p => (p.IfIndex, p.Mac)).ToList(), _routes, o, Counters);

        // 3. What to steer.
        foreach (var s in services)
            _program.AddService(KernelRouteSource.ToAddress(s.Vip), (byte)s.Protocol, s.Port);
        foreach (var (snat, proto) in _processor.NatAddresses)
            _program.AddNatAddress(KernelRouteSource.ToAddress(snat), (byte)proto, o.NatPortMin, o.NatPortMax);

        // 4. Fill rings, then attach: no frame is steered before a socket can take it.
        foreach (var s in _sockets)
            Refill(s);
        foreach (var port in _ports)
        {
            port.AttachedMode = _program.Attach(port.Name, port.IfIndex, _config.Interfaces.First(i => i.Name == port.Name).XdpMode);
            _log($"attached to {port.Name} (ifindex {port.IfIndex}, {port.AttachedMode} XDP, {port.Sockets.Count} queue(s), " +
                 $"{(port.Sockets[0].ZeroCopy ? "zero-copy" : "copy")} AF_XDP)");
        }
        foreach (var s in services)
            foreach (var b in s.Backends)
                _log($"service {s.Name}: {KernelRouteSource.ToAddress(s.Vip)} {s.Protocol.ToString().ToLowerInvariant()} {s.Port} -> " +
                     $"{KernelRouteSource.ToAddress(b.Info.Ip)}:{b.Info.Port} (snat {KernelRouteSource.ToAddress(b.Info.SnatIp)}, weight {b.Info.Weight})");

        _worker = new Thread(WorkerLoop) { Name = "zonlb-worker", IsBackground = true };
        _worker.Start();
    }

    // ---------------- worker ----------------

    private struct HeldFrame
    {
        public ulong Addr;
        public int Length;
        public uint NextHop;
        public int RxQueue;
        public long Deadline;
    }

    private HeldFrame[] _held = new HeldFrame[256];
    private int _heldCount;
    private uint[] _txPending = Array.Empty<uint>();
    private long[] _txInFlight = Array.Empty<long>();

    private void WorkerLoop()
    {
        try
        {
            Run();
        }
        catch (Exception e)
        {
            Fault = e;
            _log($"error: the data path stopped: {e}");
        }
    }

    private void Run()
    {
        var umem = _umem!;
        var processor = _processor!;
        var poller = new XskPoller(_sockets);
        _txPending = new uint[_sockets.Count];
        _txInFlight = new long[_sockets.Count];
        // egress ifindex -> port, for TX socket choice
        var portByIf = _ports.ToDictionary(p => p.IfIndex);
        long nextSweep = 0;

        while (!_stop)
        {
            long now = Environment.TickCount64;
            int work = RunControlWork();
            for (int si = 0; si < _sockets.Count; si++)
            {
                var s = _sockets[si];
                ReapCompletions(si, umem);
                uint n = s.Rx.Peek(Batch, out uint idx);
                for (uint i = 0; i < n; i++)
                {
                    var d = s.Rx.DescAt(idx + i);
                    Counters.RxPackets++;
                    Counters.RxBytes += d.Len;
                    var frame = umem.GetFrame(d.Addr, (int)d.Len);
                    var v = processor.Process(frame, now, out int egress, out uint hopKey);
                    if (v == Verdict.Transmit)
                        Transmit(portByIf[egress], s.QueueId, d.Addr, (int)d.Len);
                    else if (v == Verdict.Hold)
                        Hold(d.Addr, (int)d.Len, hopKey, s.QueueId, now);
                    else
                        umem.Free(d.Addr);
                }
                if (n > 0)
                {
                    s.Rx.Release(n);
                    work += (int)n;
                }
                Refill(s);
            }
            if (_heldCount > 0)
                RetryHeld(now, portByIf);
            work += Flush();
            if (now >= nextSweep)
            {
                processor.ExpireConnections(now, 4096);
                nextSweep = now + 100;
            }
            if (work == 0 && _heldCount == 0 && !TxOutstanding())
                poller.Wait(50);
            else if (work == 0)
                Thread.Yield();
        }
    }

    private void ReapCompletions(int si, Umem umem)
    {
        var s = _sockets[si];
        uint n = s.Completion.Peek(Batch * 4, out uint idx);
        for (uint i = 0; i < n; i++)
            umem.Free(s.Completion.AddrAt(idx + i));
        if (n > 0)
        {
            s.Completion.Release(n);
            _txInFlight[si] -= n;
        }
    }

    private void Refill(XskSocket s)
    {
        var umem = _umem!;
        uint want = Math.Min(s.Fill.FreeEntries(s.Fill.Size), (uint)umem.FreeFrames);
        if (want == 0)
            return;
        if (!s.Fill.Reserve(want, out uint idx))
            return;
        for (uint i = 0; i < want; i++)
        {
            umem.TryAllocate(out ulong addr);
            s.Fill.AddrAt(idx + i) = addr;
        }
        s.Fill.Submit(want);
        if (s.Fill.NeedsWakeup)
            s.WakeRx();
    }

    private void Transmit(Port port, int rxQueue, ulong addr, int len)
    {
        int si = port.FirstSocket + rxQueue % port.Sockets.Count;
        var tx = _sockets[si];
        if (!tx.Tx.Reserve(1, out uint idx))
        {
            Counters.Drop(DropReason.TxRingFull);
            _umem!.Free(addr);
            return;
        }
        ref var d = ref tx.Tx.DescAt(idx);
        d.Addr = addr;
        d.Len = (uint)len;
        d.Options = 0;
        _txPending[si]++;
        Counters.TxPackets++;
        Counters.TxBytes += len;
    }

    /// <summary>Publishes the TX descriptors written in this round and kicks every socket whose TX ring still
    /// holds frames (copy mode sends at most 32 per kick).</summary>
    private int Flush()
    {
        int kicked = 0;
        for (int i = 0; i < _sockets.Count; i++)
        {
            var s = _sockets[i];
            if (_txPending[i] > 0)
            {
                s.Tx.Submit(_txPending[i]);
                _txInFlight[i] += _txPending[i];
                _txPending[i] = 0;
            }
            if (s.Tx.Outstanding > 0)
            {
                int err = s.KickTx();
                Counters.TxKicks++;
                if (err != 0 && err != Native.Interop.Errno.EAGAIN && err != Native.Interop.Errno.EBUSY && err != Native.Interop.Errno.ENOBUFS)
                    Counters.TxKickErrors++;
                kicked++;
            }
        }
        return kicked;
    }

    private bool TxOutstanding()
    {
        foreach (long n in _txInFlight)
            if (n > 0)
                return true;
        return false;
    }

    private void Hold(ulong addr, int len, uint hopKey, int rxQueue, long now)
    {
        if (_heldCount == _held.Length)
        {
            Counters.Drop(DropReason.HoldQueueFull);
            _umem!.Free(addr);
            return;
        }
        _held[_heldCount++] = new HeldFrame
        {
            Addr = addr, Length = len, NextHop = hopKey, RxQueue = rxQueue,
            Deadline = now + _config.Engine.NeighborWaitMilliseconds,
        };
        Counters.Held++;
        HeldFrames = _heldCount;
    }

    private void RetryHeld(long now, Dictionary<int, Port> portByIf)
    {
        int kept = 0;
        for (int i = 0; i < _heldCount; i++)
        {
            var h = _held[i];
            var frame = _umem!.GetFrame(h.Addr, h.Length);
            var v = _processor!.RetryHeld(frame, h.NextHop, now, out int egress);
            if (v == Verdict.Transmit)
            {
                Transmit(portByIf[egress], h.RxQueue, h.Addr, h.Length);
            }
            else if (v == Verdict.Hold && now < h.Deadline)
            {
                _held[kept++] = h;
            }
            else
            {
                if (v == Verdict.Hold)
                    Counters.Drop(DropReason.NeighborUnresolved);
                _umem.Free(h.Addr);
            }
        }
        _heldCount = kept;
        HeldFrames = kept;
    }

    // ---------------- lifecycle ----------------

    /// <summary>Stops the worker and waits for it.</summary>
    public void Stop()
    {
        _stop = true;
        if (_worker != null && _worker.IsAlive && Thread.CurrentThread != _worker)
            _worker.Join();
    }

    /// <summary>Counts where every frame is. Only valid once the worker has stopped (it owns the rings); waits
    /// briefly for the kernel to complete frames it is still sending.</summary>
    public FrameAccount AccountFrames()
    {
        if (IsRunning)
            throw new InvalidOperationException("stop the data path before accounting for its frames");
        var umem = _umem!;
        for (int attempt = 0; attempt < 50; attempt++)
        {
            long tx = 0;
            foreach (var s in _sockets)
                tx += s.Tx.Pending;
            var a = Count(umem);
            if (a.Unaccounted == 0 && tx == 0)
                break;
            Thread.Sleep(10); // frames the kernel took from a TX ring reach the completion ring when their skb is freed
        }
        return Count(umem);
    }

    private FrameAccount Count(Umem umem)
    {
        long fill = 0, rx = 0, tx = 0, comp = 0;
        foreach (var s in _sockets)
        {
            fill += s.Fill.Pending;
            rx += s.Rx.Pending;
            tx += s.Tx.Pending;
            comp += s.Completion.Pending;
        }
        return new FrameAccount(umem.FrameCount, umem.FreeFrames, fill, rx, tx, comp, _heldCount);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Stop();
        // Detach first so the kernel stops steering frames to sockets that are about to close.
        _program?.Dispose();
        foreach (var s in _sockets)
            s.Dispose();
        _sockets.Clear();
        _umem?.Dispose();
        _routes?.Dispose();
    }
}
