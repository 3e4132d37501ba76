using System.Collections.Concurrent;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.Native.Abi;
using ZonLb.Native.Interop;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// One data-path thread. It owns the AF_XDP sockets of its queues (queue % workers == its index) on every
/// interface, its pipeline (connection table shard, NAT ports, next-hop cache, counters), its held frames and
/// the consuming end of one hand-off ring per other worker. A frame whose connection another worker owns
/// (see <see cref="ServiceTable.OwnerOf"/>) is handed to that worker, which translates it and sends it on
/// its own socket of the egress interface; the frame's completion then returns it to the shared pool.
/// <para>
/// This file holds its lifecycle and round; the batch's path is <c>Worker.Receive.cs</c>, multi-buffer frames
/// <c>Worker.Chains.cs</c>, the TX side <c>Worker.Transmit.cs</c>, held frames <c>Worker.Holding.cs</c>.
/// </para>
/// </summary>
internal sealed partial class Worker
{
    private const int Batch = 64;
    /// <summary>The most descriptors one frame takes with multi-buffer: the kernel's MAX_SKB_FRAGS (17) + 1.</summary>
    private const int MaxChain = 18;
    /// <summary>A batch of RX descriptors: 64, and the rest of a frame the 64th began.</summary>
    private const int RxBatch = Batch + MaxChain - 1;

    private readonly Dataplane _dp;
    private readonly Umem _umem;
    private XskSocket[] _owned = Array.Empty<XskSocket>();
    private Port[] _portOfOwned = Array.Empty<Port>();
    private int[] _txSocketByPort = Array.Empty<int>(); // port index -> index into _owned, -1 when the port has none now
    private int[] _portIfIndex = Array.Empty<int>();
    private uint[] _txPending = Array.Empty<uint>();
    private long[] _txInFlight = Array.Empty<long>();
    private volatile bool _rebound;
    private readonly ulong[] _scratch = new ulong[Batch * 4];
    private readonly Handoff[] _handoffScratch = new Handoff[Batch + MaxChain];
    private readonly ParsedPacket[] _parsed = new ParsedPacket[RxBatch];
    private readonly DropReason[] _reasons = new DropReason[RxBatch];
    private readonly LookupHint[] _hints = new LookupHint[RxBatch];
    /// <summary>Frames of the batch the fast lane may take (not parsed unless it declines them).</summary>
    private readonly bool[] _candidate = new bool[RxBatch];
    /// <summary>Multi-buffer: the descriptors of the frame that starts at each RX descriptor of the batch (1 for a
    /// frame of one buffer, the chain's length at its first, 0 at the others: they go with their first).</summary>
    private readonly byte[] _parts = new byte[RxBatch];
    /// <summary>Copies of the batch's RX descriptors that continue a chain, at their positions in the batch: a
    /// chain's other buffers as one span (the ring itself may wrap within a chain).</summary>
    private readonly XdpDesc[] _batchRest = new XdpDesc[RxBatch];
    /// <summary>A handed-off chain's other buffers.</summary>
    private readonly XdpDesc[] _inboxRest = new XdpDesc[MaxChain - 1];
    /// <summary>Per owned socket: the last round's RX batch ended inside a chain the kernel had not finished
    /// publishing (never seen; the descriptors then at the ring's head are freed, not taken for frames).</summary>
    private bool[] _midChain = Array.Empty<bool>();
    /// <summary>Frames waiting for their next hop's neighbour (translated), up to neighbor_wait_ms.</summary>
    private readonly HoldQueue _held;
    /// <summary>Later fragments that arrived before their first fragment (run again each round, up to 1 s).</summary>
    private readonly HoldQueue _fragmentsHeld;
    private const long FragmentWaitMs = 1000;
    private readonly IcmpResponder _icmp;
    /// <summary>This worker's stock of free frames in front of the shared pool.</summary>
    private readonly FrameCache _frames;

    public Worker(int index, Dataplane dp, Umem umem, PacketProcessor processor, IReadOnlyList<Port> ports, int cpu)
    {
        Index = index;
        _dp = dp;
        _umem = umem;
        Processor = processor;
        Cpu = cpu;
        _frames = new FrameCache(umem);
        _icmp = new IcmpResponder(processor.Counters);
        var restArrays = HoldQueue.NewRestArrays(MaxChain - 1);
        _held = new HoldQueue(restArrays);
        _fragmentsHeld = new HoldQueue(restArrays);
        int workers = processor.Table.Workers;
        Bind(ports);
        Inbox = new HandoffRing[workers];
        for (int w = 0; w < workers; w++)
            Inbox[w] = new HandoffRing(4096);
    }

    /// <summary>Takes the sockets of its queues from the ports. Called at start, and between two of its batches (a
    /// <see cref="WorkerCommand"/>) when an interface went away or came back with new sockets.</summary>
    public void Bind(IReadOnlyList<Port> ports)
    {
        int workers = Processor.Table.Workers;
        var owned = new List<XskSocket>();
        var ownedPorts = new List<Port>();
        var txSocketByPort = new int[ports.Count];
        var portIfIndex = new int[ports.Count];
        for (int p = 0; p < ports.Count; p++)
        {
            portIfIndex[p] = ports[p].IfIndex;
            txSocketByPort[p] = -1;
            foreach (var s in ports[p].Sockets)
            {
                if (s.QueueId % workers != Index)
                    continue;
                if (txSocketByPort[p] < 0)
                    txSocketByPort[p] = owned.Count;
                owned.Add(s);
                ownedPorts.Add(ports[p]);
            }
            if (txSocketByPort[p] < 0 && !ports[p].Missing)
                throw new InvalidOperationException($"worker {Index} has no queue of {ports[p].Name}");
        }
        _owned = owned.ToArray();
        _portOfOwned = ownedPorts.ToArray();
        _txSocketByPort = txSocketByPort;
        _portIfIndex = portIfIndex;
        _txPending = new uint[_owned.Length];
        _txInFlight = new long[_owned.Length];
        _midChain = new bool[_owned.Length];
        _rebound = true;
    }

    public int Index { get; }
    public int Cpu { get; }
    public PacketProcessor Processor { get; }
    public EngineCounters Counters => Processor.Counters;
    public IReadOnlyList<XskSocket> Owned => _owned;
    public Wakeup Wakeup { get; } = new();
    /// <summary>Inbox[w]: frames handed over by worker w.</summary>
    public HandoffRing[] Inbox { get; }
    /// <summary>UMEM frames held (waiting for a neighbour or a first fragment).</summary>
    public int HeldFrames => _held.Frames + _fragmentsHeld.Frames;
    /// <summary>Free frames in this worker's own stock (read once it has stopped).</summary>
    public int CachedFrames => _frames.Count;
    public Thread? Thread { get; set; }

    /// <summary>When the worker last came round its loop (ms, Environment.TickCount64): the watchdog's view of it. A
    /// worker sleeping in poll() comes round at least every <see cref="IdleWaitMs"/>.</summary>
    public long Heartbeat => Volatile.Read(ref _heartbeat);
    private long _heartbeat = Environment.TickCount64;

    /// <summary>True from the start of <see cref="Run"/> until the thread leaves it.</summary>
    public bool IsRunning => Volatile.Read(ref _running);
    private bool _running;

    /// <summary>The version of the service table this worker forwards with.</summary>
    public long ServicesVersion => Volatile.Read(ref _servicesVersion);
    private long _servicesVersion;

    private readonly ConcurrentQueue<WorkerCommand> _mailbox = new();
    private WorkerCommand? _command;

    /// <summary>Queues control work for this worker's tables and wakes it (see <see cref="WorkerCommand"/>).</summary>
    public void Post(WorkerCommand command)
    {
        _mailbox.Enqueue(command);
        Wakeup.Signal();
    }

    /// <summary>Between two batches: moves to the newest version of the service table, if there is one.</summary>
    private void AdoptServices()
    {
        var table = _dp.Publisher.Current;
        if (ReferenceEquals(table, Processor.Table))
            return;
        Processor.Use(table);
        Volatile.Write(ref _servicesVersion, table.Version);
        _dp.Publisher.Signal();
    }

    /// <summary>Between two batches: one bounded step of the control plane's work, if any; true while some is left.</summary>
    private bool RunCommands()
    {
        if (_command == null && !_mailbox.TryDequeue(out _command))
            return false;
        if (_command.Step(this))
            _command = null;
        return _command != null || !_mailbox.IsEmpty;
    }

    /// <summary>Runs every command queued or under way to its end on the calling thread (the worker has stopped, so
    /// no batch interleaves): what <see cref="Dataplane"/> does with commands for workers that are gone.</summary>
    public void RunCommandsToEnd()
    {
        while (RunCommands())
        {
        }
    }

    /// <summary>The worker stopped: commands still queued fail, and whoever waits for a version looks again.</summary>
    private void Retire()
    {
        Volatile.Write(ref _running, false);
        var stopped = new InvalidOperationException($"worker {Index} stopped");
        _command?.Abandon(stopped);
        _command = null;
        while (_mailbox.TryDequeue(out var c))
            c.Abandon(stopped);
        _dp.Publisher.Signal();
    }

    /// <summary>Frames waiting in this worker's inboxes.</summary>
    public long InboxFrames
    {
        get
        {
            long n = 0;
            foreach (var r in Inbox)
                n += r.Count;
            return n;
        }
    }

    /// <summary>Puts frames into every fill ring before the program is attached.</summary>
    public void FillAll()
    {
        foreach (var s in _owned)
            Refill(s);
    }

    /// <summary>Set once the thread has taken its CPU, nice value and scheduling class (see
    /// <see cref="PlacementError"/>): the data path is reported running only after every worker is placed.</summary>
    public ManualResetEventSlim Placed { get; } = new();
    /// <summary>How the thread is scheduled, once placed: "SCHED_FIFO 10 (auto)", "normal", "nice -15".</summary>
    public string Scheduling { get; private set; } = "not started";

    /// <summary>Why the thread could not be placed as configured (it then does not run).</summary>
    public Exception? PlacementError { get; private set; }

    public void Run(Func<bool> stopping)
    {
        Volatile.Write(ref _running, true);
        try
        {
            RunLoop(stopping);
        }
        finally
        {
            Retire();
        }
    }

    private void RunLoop(Func<bool> stopping)
    {
        var o = _dp.Config.Engine;
        bool realtime = o.WorkerFifoPriority > 0;
        try
        {
            if (Cpu >= 0)
                CpuAffinity.PinCurrentThread(Cpu);
            if (o.WorkerNice != 0)
                CpuAffinity.SetCurrentThreadNice(o.WorkerNice);
            if (realtime)
                CpuAffinity.SetCurrentThreadFifo(o.WorkerFifoPriority);
            else if (o.WorkerFifoPriority == EngineOptions.AutoFifoPriority && o.WorkerNice == 0 && o.BusyPollMicroseconds == 0)
                realtime = CpuAffinity.TrySetCurrentThreadFifo(EngineOptions.AutoFifoPriorityValue);
            Scheduling = realtime ? $"SCHED_FIFO {(o.WorkerFifoPriority > 0 ? o.WorkerFifoPriority : EngineOptions.AutoFifoPriorityValue)}"
                : o.WorkerNice != 0 ? $"nice {o.WorkerNice}" : "normal";
            if (o.WorkerFifoPriority == EngineOptions.AutoFifoPriority)
                Scheduling += realtime ? " (auto)" : o.WorkerNice == 0 && o.BusyPollMicroseconds == 0 ? " (auto: SCHED_FIFO not permitted, CAP_SYS_NICE missing)" : " (auto)";
        }
        catch (Exception e)
        {
            PlacementError = e;
            return;
        }
        finally
        {
            Placed.Set();
        }
        bool busyPoll = o.BusyPollMicroseconds > 0;
        var poller = new XskPoller(_owned, Wakeup);
        _rebound = false;
        var workers = _dp.Workers;
        _sweptAt = Environment.TickCount64;
        while (!stopping())
        {
            Volatile.Write(ref _heartbeat, Environment.TickCount64);
            AdoptServices();
            bool control = RunCommands();
            if (_rebound)
            {
                poller = new XskPoller(_owned, Wakeup);
                _rebound = false;
            }
            long now = Environment.TickCount64;
            int work = 0;
            for (int si = 0; si < _owned.Length; si++)
                work += ReceiveBatch(si, now);
            // publish hand-offs and wake their owners (one syscall per owner with new frames)
            for (int w = 0; w < workers.Length; w++)
                if (w != Index && workers[w].Inbox[Index].Publish())
                    workers[w].Wakeup.Signal();
            for (int w = 0; w < Inbox.Length; w++)
                work += DrainInbox(Inbox[w], now);
            if (_held.Count > 0)
                RetryHeld(now);
            if (_fragmentsHeld.Count > 0)
                RetryFragments(now);
            work += Flush();
            bool sweeping = SweepExpired(now, work > 0);
            if (busyPoll)
            {
                // no sleeping: a syscall on each socket runs its receive queue's NAPI in this thread
                if (work == 0)
                    foreach (var s in _owned)
                        s.WakeRx();
            }
            else if (work == 0 && !control && _held.Count == 0 && _fragmentsHeld.Count == 0 && !TxInFlight())
                poller.Wait(sweeping ? SweepingWaitMs : IdleWaitMs);
            else if (work == 0 && realtime)
                poller.Wait(1); // a real-time thread's yield lets no normal thread run: sleep instead, briefly
            else if (work == 0)
                Thread.Yield();
        }
    }

    /// <summary>How long an idle worker sleeps in poll() before it looks again (frames wake it at once).</summary>
    private const int IdleWaitMs = 50;
    /// <summary>The same while expired connections remain to be swept.</summary>
    private const int SweepingWaitMs = 5;
    /// <summary>The connection table is walked whole about this often, whatever its size.</summary>
    private const long SweepPeriodMs = 5000;
    /// <summary>A round's sweep stops after this long: a frame that arrives meanwhile waits at most that.</summary>
    private static readonly long SweepBudgetBusy = System.Diagnostics.Stopwatch.Frequency * 5 / 1_000_000;  // 5 us
    private static readonly long SweepBudgetIdle = System.Diagnostics.Stopwatch.Frequency * 20 / 1_000_000; // 20 us
    private const int SweepChunk = 256;
    private long _sweptAt, _fragmentsExpireAt;
    private double _sweepDebt;

    /// <summary>Expires idle connections a slice at a time, bounded by time (a few microseconds a round, more when the
    /// round found nothing to do): the table's slots fall due at the rate that walks it in <see cref="SweepPeriodMs"/>,
    /// and each round sweeps what is due within its budget. True while slots remain due.</summary>
    private bool SweepExpired(long now, bool busy)
    {
        var table = Processor.Connections;
        _sweepDebt = Math.Min(table.Capacity, _sweepDebt + (now - _sweptAt) * (double)table.Capacity / SweepPeriodMs);
        _sweptAt = now;
        if (now >= _fragmentsExpireAt)
        {
            Processor.ExpireFragments(now);
            _fragmentsExpireAt = now + 100;
        }
        if (table.Count == 0)
        {
            _sweepDebt = 0;
            return false;
        }
        if (_sweepDebt < SweepChunk)
            return false;
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (busy ? SweepBudgetBusy : SweepBudgetIdle);
        do
        {
            Processor.SweepConnections(now, SweepChunk);
            _sweepDebt -= SweepChunk;
        }
        while (_sweepDebt >= SweepChunk && System.Diagnostics.Stopwatch.GetTimestamp() < deadline);
        return _sweepDebt >= SweepChunk;
    }
}
