using System.Collections.Concurrent;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Services;
using ZonLb.Native.Abi;
using ZonLb.Native.Interop;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// One data-path thread. It owns the AF_XDP sockets of its queues (queue % workers == its index) on every
/// interface, its pipeline (connection table shard, NAT ports, next-hop cache, counters), its held frames and
/// the consuming end of one hand-off ring per other worker. A frame whose connection another worker owns
/// (see <see cref="ServiceTable.OwnerOf"/>) is handed to that worker, which translates it and sends it on
/// its own socket of the egress interface; the frame's completion then returns it to the shared pool.
/// </summary>
internal sealed class Worker
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
    private long _icmpTokens = IcmpBurst, _icmpRefilledAt;
    /// <summary>ICMP errors per worker: a burst of 20, then 100 per second (routers rate-limit theirs too).</summary>
    private const long IcmpBurst = 20, IcmpPerSecond = 100;
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
    /// <summary>Arrays for the other buffers of held chains (taken while held, then returned): no allocation.</summary>
    private readonly Stack<XdpDesc[]> _restPool = new(Enumerable.Range(0, 64).Select(_ => new XdpDesc[MaxChain - 1]));
    /// <summary>Per owned socket: the last round's RX batch ended inside a chain the kernel had not finished
    /// publishing (never seen; the descriptors then at the ring's head are freed, not taken for frames).</summary>
    private bool[] _midChain = Array.Empty<bool>();
    private HeldFrame[] _held = new HeldFrame[256];
    private int _heldCount;
    /// <summary>Later fragments that arrived before their first fragment (run again each round, up to 1 s).</summary>
    private readonly HeldFrame[] _fragmentsHeld = new HeldFrame[256];
    private int _fragmentsHeldCount;
    private const long FragmentWaitMs = 1000;

    private struct HeldFrame
    {
        public ulong Addr;
        public int Length;
        public IpAddr NextHop;
        public long Deadline;
        /// <summary>The VLAN the frame leaves with when its route gives none (the client's).</summary>
        public ushort Vlan;
        /// <summary>Multi-buffer: the frame's other buffers (RestCount of them, from the pool), or null.</summary>
        public XdpDesc[]? Rest;
        public int RestCount;

        public readonly ReadOnlySpan<XdpDesc> RestSpan => Rest == null ? default : Rest.AsSpan(0, RestCount);
    }

    public Worker(int index, Dataplane dp, Umem umem, PacketProcessor processor, IReadOnlyList<Port> ports, int cpu)
    {
        Index = index;
        _dp = dp;
        _umem = umem;
        Processor = processor;
        Cpu = cpu;
        int workers = processor.Table.Workers;
        Bind(ports);
        Inbox = new HandoffRing[workers];
        for (int w = 0; w < workers; w++)
            Inbox[w] = new HandoffRing(4096);
    }

    /// <summary>Takes the sockets of its queues from the ports. Called at start, and with the workers parked when
    /// an interface came back with new sockets.</summary>
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
    public int HeldFrames
    {
        get
        {
            int n = _heldCount + _fragmentsHeldCount;
            for (int i = 0; i < _heldCount; i++)
                n += _held[i].RestCount;
            for (int i = 0; i < _fragmentsHeldCount; i++)
                n += _fragmentsHeld[i].RestCount;
            return n;
        }
    }
    public Thread? Thread { get; set; }

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
            if (_heldCount > 0)
                RetryHeld(now);
            if (_fragmentsHeldCount > 0)
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
            else if (work == 0 && !control && _heldCount == 0 && _fragmentsHeldCount == 0 && !TxInFlight())
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

    /// <summary>Reaps socket <paramref name="si"/>'s TX completions, takes one batch from its RX ring, translates
    /// and queues each frame for TX (or hands it to its owner, holds or drops it), and refills the fill ring;
    /// returns the number of frames taken. A method of its own, called once per socket per round, so that the JIT
    /// compiles it fully optimized (with profile guidance) rather than as an on-stack replacement of
    /// <see cref="Run"/>'s endless loop.</summary>
    private int ReceiveBatch(int si, long now)
    {
        var s = _owned[si];
        ReapCompletions(si);
        uint n = s.Rx.Peek(Batch, out uint idx);
        // multi-buffer: a frame the batch cut is taken whole, one descriptor at a time (more at once could cut the
        // next frame); the kernel publishes a frame's descriptors together
        while (n > 0 && n < RxBatch && s.Rx.DescAt(idx + n - 1).Continues && s.Rx.Peek(1, out _) == 1)
            n++;
        // the batch in two passes: look at every frame (and get its connection lookup under way), then
        // process them. A frame the fast lane may take is parsed only if the lane declines it.
        for (uint i = 0; i < n; i++)
        {
            var d = s.Rx.DescAt(idx + i);
            if (d.Options != 0 || _midChain[si])
            {
                i += LookAtChain(si, idx, i, n) - 1;
                continue;
            }
            _parts[i] = 1;
            var frame = _umem.GetFrame(d.Addr, (int)d.Len);
            _candidate[i] = Processor.FastLaneCandidate(frame, out _hints[i]);
            if (!_candidate[i])
            {
                _reasons[i] = PacketParser.Parse(frame, out _parsed[i]);
                _hints[i] = Processor.HintOf(ref _parsed[i], _reasons[i]);
            }
        }
        Processor.PrefetchConnections(_hints.AsSpan(0, (int)n));
        for (uint i = 0; i < n; i++)
        {
            if (_parts[i] != 1)
            {
                if (_parts[i] > 1)
                {
                    var head = s.Rx.DescAt(idx + i);
                    var rest = _batchRest.AsSpan((int)i + 1, _parts[i] - 1);
                    Counters.RxPackets++;
                    Counters.RxMultiBuffer++;
                    Counters.RxBytes += head.Len + BytesOf(rest);
                    Forward(si, head.Addr, (int)head.Len, in _parsed[i], _reasons[i], now, rest);
                }
                continue;
            }
            var d = s.Rx.DescAt(idx + i);
            Counters.RxPackets++;
            Counters.RxBytes += d.Len;
            var frame = _umem.GetFrame(d.Addr, (int)d.Len);
            int egress;
            IpAddr hop;
            if (_candidate[i])
            {
                // an established flow's packet, the common case; a connection in this worker's table is
                // this worker's, so no owner to ask
                if (Processor.TryFastLane(frame, now, out egress, out hop))
                {
                    Complete(Verdict.Transmit, d.Addr, (int)d.Len, egress, hop, now);
                    continue;
                }
                _reasons[i] = PacketParser.Parse(frame, out _parsed[i]); // the general path hashes it itself
            }
            Forward(si, d.Addr, (int)d.Len, in _parsed[i], _reasons[i], now, default);
        }
        if (n > 0)
        {
            s.Rx.Release(n);
            if (Diagnostics.FaultInjection.Mode != null)
                InjectFault();
        }
        Refill(s);
        return (int)n;
    }

    /// <summary>The general path, for a frame the fast lane did not take (parsed: p and its reason): checked,
    /// handed to the worker that owns its connection, or translated and then sent, held, answered with ICMP or
    /// dropped. rest: the frame's other buffers (multi-buffer), empty for a frame of one.</summary>
    private void Forward(int si, ulong addr, int len, in ParsedPacket p, DropReason reason, long now, ReadOnlySpan<XdpDesc> rest)
    {
        var frame = _umem.GetFrame(addr, len);
        if (reason == DropReason.None && p.L3Offset != Wire.EthernetHeader && !_portOfOwned[si].AcceptsVlan(frame))
            reason = DropReason.VlanNotConfigured;
        int owner = reason == DropReason.None ? Processor.Table.OwnerOf(in p) : Index;
        if (owner < 0)
            owner = Index; // a later fragment whose first was not seen yet: it waits here
        if (owner != Index)
        {
            HandOff(owner, addr, len, rest);
            return;
        }
        Verdict v;
        int egress;
        IpAddr hop;
        if (reason != DropReason.None)
        {
            Counters.Drop(reason);
            v = Verdict.Drop;
            egress = 0;
            hop = default;
        }
        else
        {
            v = Processor.Process(frame, in p, now, out egress, out hop);
            if (v == Verdict.Transmit && Processor.TimeWaitResetSeq is uint resetSeq)
                SendTimeWaitReset(egress, frame, resetSeq);
            if (v == Verdict.Drop && Processor.LastDropReason is DropReason.TtlExceeded or DropReason.FragmentationNeeded &&
                AnswerWithIcmp(_portOfOwned[si], addr, len, now))
            {
                FreeRest(rest); // the answer quotes the start of the frame, from its first buffer
                return;
            }
        }
        Complete(v, addr, len, egress, hop, now, rest);
    }

    /// <summary>Passes a frame (and its other buffers) to the worker that owns its connection, published with the
    /// round's other hand-offs.</summary>
    private bool HandOff(int owner, ulong addr, int len, ReadOnlySpan<XdpDesc> rest)
    {
        var ring = _dp.Workers[owner].Inbox[Index];
        if (rest.IsEmpty ? ring.TryPush(addr, len) : ring.TryPushChain(addr, len, rest))
        {
            Counters.HandedOff++;
            return true;
        }
        Counters.Drop(DropReason.HandoffFull);
        _umem.Free(addr);
        FreeRest(rest);
        return false;
    }

    /// <summary>The first pass over a frame of several descriptors starting at the batch's i-th (n in the batch):
    /// copies the others' descriptors aside and parses the frame (<see cref="ParseChain"/>). Returns how many
    /// descriptors it took. Descriptors that continue a chain whose start was not seen (the ring's head after
    /// <see cref="_midChain"/>) are freed and counted as one truncated frame.</summary>
    private uint LookAtChain(int si, uint idx, uint i, uint n)
    {
        var rx = _owned[si].Rx;
        uint k = 0;
        while (i + k < n && rx.DescAt(idx + i + k++).Continues)
        {
        }
        bool complete = !rx.DescAt(idx + i + k - 1).Continues;
        if (_midChain[si] || !complete)
        {
            for (uint j = 0; j < k; j++)
            {
                _parts[i + j] = 0;
                _umem.Free(rx.DescAt(idx + i + j).Addr);
            }
            if (_midChain[si])
                Counters.Drop(DropReason.Truncated);
            _midChain[si] = !complete;
            return k;
        }
        _parts[i] = (byte)k;
        for (uint j = 1; j < k; j++)
        {
            _parts[i + j] = 0;
            _batchRest[i + j] = rx.DescAt(idx + i + j);
        }
        var head = rx.DescAt(idx + i);
        _candidate[i] = false;
        ref var p = ref _parsed[i];
        var reason = ParseChain(head.Addr, (int)head.Len, _batchRest.AsSpan((int)i + 1, (int)k - 1), out p);
        _reasons[i] = reason;
        _hints[i] = Processor.HintOf(ref p, reason);
        return k;
    }

    /// <summary>Parses a frame's first buffer knowing the length of its other buffers (rest), and when its checksum
    /// is partial sums those for the repair (each buffer's words counted from the transport header's start).</summary>
    private DropReason ParseChain(ulong addr, int len, ReadOnlySpan<XdpDesc> rest, out ParsedPacket p)
    {
        var frame = _umem.GetFrame(addr, len);
        var reason = PacketParser.Parse(frame, (int)BytesOf(rest), out p);
        if (reason == DropReason.None && p.Beyond > 0 && Processor.HasPartialChecksum(frame, in p))
        {
            ulong sum = 0;
            int offset = p.L4InFrame, left = p.Beyond;
            for (int j = 0; j < rest.Length && left > 0; j++)
            {
                int n = Math.Min((int)rest[j].Len, left);
                sum += InternetChecksum.SumAt(_umem.GetFrame(rest[j].Addr, n), offset);
                offset += n;
                left -= n;
            }
            p.BeyondSum = sum;
        }
        return reason;
    }

    private static long BytesOf(ReadOnlySpan<XdpDesc> rest)
    {
        long n = 0;
        foreach (ref readonly var d in rest)
            n += d.Len;
        return n;
    }

    private void FreeRest(ReadOnlySpan<XdpDesc> rest)
    {
        foreach (ref readonly var d in rest)
            _umem.Free(d.Addr);
    }

    /// <summary>Keeps a held frame's other buffers in an array from the pool; false when the pool is empty.</summary>
    private bool KeepRest(ReadOnlySpan<XdpDesc> rest, ref HeldFrame h)
    {
        if (rest.IsEmpty)
            return true;
        if (!_restPool.TryPop(out var a))
            return false;
        rest.CopyTo(a);
        h.Rest = a;
        h.RestCount = rest.Length;
        return true;
    }

    private void ReturnRest(in HeldFrame h)
    {
        if (h.Rest != null)
            _restPool.Push(h.Rest);
    }

    /// <summary>Turns a frame whose TTL ran out, or that is too big for its egress interface, into ICMP time
    /// exceeded or fragmentation needed / packet too big back out of the port it came in on, within the rate
    /// limit (shared by both); false when the frame should just be freed.</summary>
    private bool AnswerWithIcmp(Port ingress, ulong addr, int len, long now)
    {
        long refill = (now - _icmpRefilledAt) * IcmpPerSecond / 1000;
        if (refill > 0)
        {
            _icmpTokens = Math.Min(IcmpBurst, _icmpTokens + refill);
            _icmpRefilledAt = now;
        }
        if (_icmpTokens == 0)
        {
            Counters.IcmpRateLimited++;
            return false;
        }
        var whole = _umem.GetWholeFrame(addr, out int offset);
        bool tooBig = Processor.LastDropReason == DropReason.FragmentationNeeded;
        int n = tooBig
            ? IcmpErrors.BuildTooBig(whole.Slice(offset), len, Processor.LastMtu, ingress.Address, ingress.Address6, ingress.Mac)
            : IcmpErrors.BuildTimeExceeded(whole.Slice(offset), len, ingress.Address, ingress.Address6, ingress.Mac);
        if (n == 0)
            return false;
        _icmpTokens--;
        if (tooBig)
            Counters.IcmpTooBigSent++;
        else
            Counters.IcmpTimeExceededSent++;
        Transmit(ingress.IfIndex, addr, n);
        return true;
    }

    private static void InjectFault()
    {
        if (Diagnostics.FaultInjection.Worker)
            throw new InvalidOperationException("injected worker fault (ZONLB_INJECT_FAULT=worker)");
        if (Diagnostics.FaultInjection.Unhandled)
            new Thread(() => throw new InvalidOperationException("injected unhandled exception (ZONLB_INJECT_FAULT=unhandled)")).Start();
    }

    private int DrainInbox(HandoffRing ring, long now)
    {
        int total = 0;
        int n;
        while ((n = ring.Drain(_handoffScratch.AsSpan(0, Batch))) > 0)
        {
            // a chain the batch cut: take the rest (a producer publishes whole chains)
            while (_handoffScratch[n - 1].Continues && n < _handoffScratch.Length && ring.Drain(_handoffScratch.AsSpan(n, 1)) == 1)
                n++;
            for (int i = 0; i < n; i++)
            {
                var h = _handoffScratch[i];
                if (h.Continues)
                {
                    i += DrainChain(i, n, now) - 1;
                    continue;
                }
                var frame = _umem.GetFrame(h.Addr, h.Length);
                var v = Processor.Process(frame, now, out int egress, out IpAddr hop);
                if (v == Verdict.Transmit && Processor.TimeWaitResetSeq is uint resetSeq)
                    SendTimeWaitReset(egress, frame, resetSeq);
                Complete(v, h.Addr, h.Length, egress, hop, now);
            }
            total += n;
        }
        return total;
    }

    /// <summary>A handed-off frame of several buffers at _handoffScratch[i] (n drained): translated and completed
    /// here, its owner. Returns how many items it took.</summary>
    private int DrainChain(int i, int n, long now)
    {
        int k = 1;
        while (i + k < n && _handoffScratch[i + k - 1].Continues)
            k++;
        for (int j = 1; j < k; j++)
            _inboxRest[j - 1] = new XdpDesc { Addr = _handoffScratch[i + j].Addr, Len = (uint)_handoffScratch[i + j].Length };
        var rest = _inboxRest.AsSpan(0, k - 1);
        var h = _handoffScratch[i];
        var reason = ParseChain(h.Addr, h.Length, rest, out var p);
        if (reason != DropReason.None || _handoffScratch[i + k - 1].Continues)
        {
            Counters.Drop(reason != DropReason.None ? reason : DropReason.Truncated);
            _umem.Free(h.Addr);
            FreeRest(rest);
            return k;
        }
        var v = Processor.Process(_umem.GetFrame(h.Addr, h.Length), in p, now, out int egress, out IpAddr hop);
        Complete(v, h.Addr, h.Length, egress, hop, now, rest);
        return k;
    }

    private void Complete(Verdict v, ulong addr, int len, int egress, in IpAddr hop, long now, ReadOnlySpan<XdpDesc> rest = default)
    {
        if (v == Verdict.Transmit)
            TransmitTagged(egress, addr, len, Processor.LastEgressVlan, rest);
        else if (v == Verdict.Hold)
            Hold(addr, len, hop, now, rest);
        else if (v == Verdict.HoldFragment)
            HoldFragment(addr, len, now, rest);
        else
        {
            _umem.Free(addr);
            FreeRest(rest);
        }
    }

    /// <summary>Ends the backend's TIME_WAIT on the tuple a new connection's SYN (translated, about to be sent) takes
    /// over: a reset built from the SYN in a frame of its own, queued just before it on the same ring.</summary>
    private void SendTimeWaitReset(int egress, ReadOnlySpan<byte> syn, uint seq)
    {
        if (!_umem.TryAllocate(out ulong addr))
            return; // no frame: the SYN goes alone, and the client tries again if the backend refuses it
        var whole = _umem.GetWholeFrame(addr, out int offset);
        int n = TimeWaitReset.Build(syn, seq, whole.Slice(offset));
        if (n == 0)
        {
            _umem.Free(addr);
            return;
        }
        Counters.TimeWaitResets++;
        TransmitTagged(egress, addr, n, Processor.LastEgressVlan);
    }

    /// <summary>Sends a frame with the 802.1Q tag its route asks for (vlan 0: none): a tag is rewritten in place,
    /// pushed into the UMEM headroom in front of the frame, or popped, moving only the two MAC addresses.</summary>
    private void TransmitTagged(int egress, ulong addr, int len, ushort vlan, ReadOnlySpan<XdpDesc> rest = default)
    {
        if (vlan == 0 && (len < 18 || _umem.GetFrame(addr, 14)[12] != 0x81))
        {
            Transmit(egress, addr, len, rest); // untagged in and out: the common case, nothing to move
            return;
        }
        var whole = _umem.GetWholeFrame(addr, out int offset);
        int start = offset;
        if (!VlanTags.Retag(whole, ref offset, ref len, vlan))
        {
            Counters.Drop(DropReason.Malformed); // no headroom: never with the kernel's XDP_PACKET_HEADROOM
            _umem.Free(addr);
            FreeRest(rest);
            return;
        }
        Transmit(egress, (ulong)((long)addr + offset - start), len, rest);
    }

    private void ReapCompletions(int si)
    {
        var s = _owned[si];
        uint n = s.Completion.Peek((uint)_scratch.Length, out uint idx);
        if (n == 0)
            return;
        for (uint i = 0; i < n; i++)
            _scratch[i] = s.Completion.AddrAt(idx + i);
        _umem.FreeBatch(_scratch.AsSpan(0, (int)n));
        s.Completion.Release(n);
        _txInFlight[si] -= n;
    }

    private void Refill(XskSocket s)
    {
        uint want = Math.Min(s.Fill.FreeEntries(s.Fill.Size), (uint)_scratch.Length);
        if (want == 0)
            return;
        int got = _umem.AllocateBatch(_scratch.AsSpan(0, (int)want));
        if (got == 0 || !s.Fill.Reserve((uint)got, out uint idx))
        {
            _umem.FreeBatch(_scratch.AsSpan(0, got));
            return;
        }
        for (int i = 0; i < got; i++)
            s.Fill.AddrAt(idx + (uint)i) = _scratch[i];
        s.Fill.Submit((uint)got);
        if (s.Fill.NeedsWakeup)
            s.WakeRx();
    }

    /// <summary>Queues a frame on the egress interface's TX ring: one descriptor, or with multi-buffer its first
    /// buffer's and then the rest's, XDP_PKT_CONTD on all but the last.</summary>
    private void Transmit(int egressIfIndex, ulong addr, int len, ReadOnlySpan<XdpDesc> rest = default)
    {
        // a loop, not Array.IndexOf: a worker has a handful of ports, and this runs for every frame sent
        var ifIndexes = _portIfIndex;
        int si = -1;
        for (int port = 0; port < ifIndexes.Length; port++)
        {
            if (ifIndexes[port] == egressIfIndex)
            {
                si = _txSocketByPort[port];
                break;
            }
        }
        var reason = si < 0 ? DropReason.EgressNotAttached : DropReason.None;
        uint idx = 0;
        if (si >= 0 && !_owned[si].Tx.Reserve(1 + (uint)rest.Length, out idx))
            reason = DropReason.TxRingFull;
        if (reason != DropReason.None)
        {
            Counters.Drop(reason);
            _umem.Free(addr);
            FreeRest(rest);
            return;
        }
        var tx = _owned[si].Tx;
        ref var d = ref tx.DescAt(idx);
        d.Addr = addr;
        d.Len = (uint)len;
        d.Options = 0;
        long bytes = len;
        if (!rest.IsEmpty)
        {
            d.Options = XdpDesc.OptionsFor(continues: true);
            for (int j = 0; j < rest.Length; j++)
            {
                ref var t = ref tx.DescAt(idx + 1 + (uint)j);
                t.Addr = rest[j].Addr;
                t.Len = rest[j].Len;
                t.Options = XdpDesc.OptionsFor(continues: j + 1 < rest.Length);
                bytes += rest[j].Len;
            }
        }
        _txPending[si] += 1 + (uint)rest.Length;
        Counters.TxPackets++;
        Counters.TxBytes += bytes;
    }

    /// <summary>Publishes this round's TX descriptors and kicks every socket whose TX ring still holds frames
    /// (copy mode sends at most 32 frames per kick).</summary>
    /// <summary>Enough kicks for a full RX batch's worth of frames (Batch / 32), and some.</summary>
    private const int MaxKicksPerFlush = 8;

    private int Flush()
    {
        int kicked = 0;
        for (int i = 0; i < _owned.Length; i++)
        {
            var s = _owned[i];
            if (_txPending[i] > 0)
            {
                s.Tx.Submit(_txPending[i]);
                _txInFlight[i] += _txPending[i];
                _txPending[i] = 0;
            }
            // Copy mode sends at most 32 frames per kick: kick again while the kernel keeps taking frames, so a
            // batch of 64 received frames does not leave half of its replies waiting a whole round.
            for (int k = 0; k < MaxKicksPerFlush && s.Tx.Outstanding > 0; k++)
            {
                uint before = s.Tx.Outstanding;
                int err = s.KickTx();
                Counters.TxKicks++;
                kicked++;
                if (err != 0 && err != Errno.EAGAIN && err != Errno.EBUSY && err != Errno.ENOBUFS)
                    Counters.TxKickErrors++;
                // Copy mode answers EAGAIN after every 32 frames it sent while more wait: that is progress,
                // not a reason to stop. Stop when a kick took nothing (the completion ring is full, or the
                // device is busy): the next round tries again.
                if (s.Tx.Outstanding == before)
                    break;
            }
        }
        return kicked;
    }

    private bool TxInFlight()
    {
        foreach (long n in _txInFlight)
            if (n > 0)
                return true;
        return false;
    }

    private void Hold(ulong addr, int len, in IpAddr hop, long now, ReadOnlySpan<XdpDesc> rest)
    {
        var h = new HeldFrame
        {
            Addr = addr, Length = len, NextHop = hop, Deadline = now + _dp.Config.Engine.NeighborWaitMilliseconds,
            Vlan = Processor.LastEgressVlan,
        };
        if (_heldCount == _held.Length || !KeepRest(rest, ref h))
        {
            Counters.Drop(DropReason.HoldQueueFull);
            _umem.Free(addr);
            FreeRest(rest);
            return;
        }
        _held[_heldCount++] = h;
        Counters.Held++;
    }

    private void HoldFragment(ulong addr, int len, long now, ReadOnlySpan<XdpDesc> rest)
    {
        var h = new HeldFrame { Addr = addr, Length = len, Deadline = now + FragmentWaitMs };
        if (_fragmentsHeldCount == _fragmentsHeld.Length || !KeepRest(rest, ref h))
        {
            Counters.Drop(DropReason.Fragment);
            _umem.Free(addr);
            FreeRest(rest);
            return;
        }
        _fragmentsHeld[_fragmentsHeldCount++] = h;
    }

    /// <summary>Runs waiting later fragments again: handed to the worker that saw their first fragment, or
    /// forwarded, or kept until their deadline, then dropped as `fragment`.</summary>
    private void RetryFragments(long now)
    {
        var registry = Processor.Table;
        var workers = _dp.Workers;
        int kept = 0;
        for (int i = 0; i < _fragmentsHeldCount; i++)
        {
            var h = _fragmentsHeld[i];
            var rest = h.RestSpan;
            if (ParseChain(h.Addr, h.Length, rest, out var p) != DropReason.None)
            {
                _umem.Free(h.Addr);
                FreeRest(rest);
                ReturnRest(in h);
                continue;
            }
            int owner = registry.OwnerOf(in p);
            if (owner >= 0 && owner != Index)
            {
                if (HandOff(owner, h.Addr, h.Length, rest))
                {
                    workers[owner].Inbox[Index].Publish();
                    workers[owner].Wakeup.Signal();
                }
                ReturnRest(in h);
                continue;
            }
            var v = Processor.Process(_umem.GetFrame(h.Addr, h.Length), in p, now, out int egress, out IpAddr hop);
            if (v == Verdict.HoldFragment)
            {
                if (now < h.Deadline)
                {
                    _fragmentsHeld[kept++] = h;
                    continue;
                }
                Counters.Drop(DropReason.Fragment);
                v = Verdict.Drop;
            }
            Complete(v, h.Addr, h.Length, egress, hop, now, rest);
            ReturnRest(in h);
        }
        _fragmentsHeldCount = kept;
    }

    private void RetryHeld(long now)
    {
        int kept = 0;
        for (int i = 0; i < _heldCount; i++)
        {
            var h = _held[i];
            var frame = _umem.GetFrame(h.Addr, h.Length);
            var v = Processor.RetryHeld(frame, h.NextHop, now, out int egress);
            if (v == Verdict.Hold && now < h.Deadline)
            {
                _held[kept++] = h;
                continue;
            }
            if (v == Verdict.Transmit)
            {
                TransmitTagged(egress, h.Addr, h.Length, Processor.LastEgressVlan != 0 ? Processor.LastEgressVlan : h.Vlan, h.RestSpan);
            }
            else
            {
                if (v == Verdict.Hold)
                    Counters.Drop(DropReason.NeighborUnresolved);
                _umem.Free(h.Addr);
                FreeRest(h.RestSpan);
            }
            ReturnRest(in h);
        }
        _heldCount = kept;
    }
}
