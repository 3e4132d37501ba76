using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Native.Interop;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// One data-path thread. It owns the AF_XDP sockets of its queues (queue % workers == its index) on every
/// interface, its pipeline (connection table shard, NAT ports, next-hop cache, counters), its held frames and
/// the consuming end of one hand-off ring per other worker. A frame whose connection another worker owns
/// (see <see cref="ServiceRegistry.OwnerOf"/>) is handed to that worker, which translates it and sends it on
/// its own socket of the egress interface; the frame's completion then returns it to the shared pool.
/// </summary>
internal sealed class Worker
{
    private const int Batch = 64;

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
    private readonly Handoff[] _handoffScratch = new Handoff[Batch];
    private readonly ParsedPacket[] _parsed = new ParsedPacket[Batch];
    private readonly DropReason[] _reasons = new DropReason[Batch];
    private readonly LookupHint[] _hints = new LookupHint[Batch];
    /// <summary>Frames of the batch the fast lane may take (not parsed unless it declines them).</summary>
    private readonly bool[] _candidate = new bool[Batch];
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
    }

    public Worker(int index, Dataplane dp, Umem umem, PacketProcessor processor, IReadOnlyList<Port> ports, int cpu)
    {
        Index = index;
        _dp = dp;
        _umem = umem;
        Processor = processor;
        Cpu = cpu;
        int workers = processor.Registry.Workers;
        Bind(ports);
        Inbox = new HandoffRing[workers];
        for (int w = 0; w < workers; w++)
            Inbox[w] = new HandoffRing(4096);
    }

    /// <summary>Takes the sockets of its queues from the ports. Called at start, and with the workers parked when
    /// an interface came back with new sockets.</summary>
    public void Bind(IReadOnlyList<Port> ports)
    {
        int workers = Processor.Registry.Workers;
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
    public int HeldFrames => _heldCount + _fragmentsHeldCount;
    public Thread? Thread { get; set; }

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
    /// <summary>Why the thread could not be placed as configured (it then does not run).</summary>
    public Exception? PlacementError { get; private set; }

    public void Run(Func<bool> stopping)
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
        long nextSweep = 0;
        while (!stopping())
        {
            _dp.ParkIfAsked();
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
            if (now >= nextSweep)
            {
                // a bounded slice per tick: the whole table is walked about every 5 s, whatever its size
                Processor.ExpireConnections(now, Math.Max(4096, Processor.Connections.Capacity / 50));
                nextSweep = now + 100;
            }
            if (busyPoll)
            {
                // no sleeping: a syscall on each socket runs its receive queue's NAPI in this thread
                if (work == 0)
                    foreach (var s in _owned)
                        s.WakeRx();
            }
            else if (work == 0 && _heldCount == 0 && _fragmentsHeldCount == 0 && !TxInFlight())
                poller.Wait(50);
            else if (work == 0 && realtime)
                poller.Wait(1); // a real-time thread's yield lets no normal thread run: sleep instead, briefly
            else if (work == 0)
                Thread.Yield();
        }
    }

    /// <summary>Reaps socket <paramref name="si"/>'s TX completions, takes one batch from its RX ring, translates
    /// and queues each frame for TX (or hands it to its owner, holds or drops it), and refills the fill ring;
    /// returns the number of frames taken. A method of its own, called once per socket per round, so that the JIT
    /// compiles it fully optimized (with profile guidance) rather than as an on-stack replacement of
    /// <see cref="Run"/>'s endless loop.</summary>
    private int ReceiveBatch(int si, long now)
    {
        var registry = Processor.Registry;
        var workers = _dp.Workers;
        var s = _owned[si];
        ReapCompletions(si);
        uint n = s.Rx.Peek(Batch, out uint idx);
        // the batch in two passes: look at every frame (and get its connection lookup under way), then
        // process them. A frame the fast lane may take is parsed only if the lane declines it.
        for (uint i = 0; i < n; i++)
        {
            var d = s.Rx.DescAt(idx + i);
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
            var reason = _reasons[i];
            ref readonly var p = ref _parsed[i];
            if (reason == DropReason.None && p.L3Offset != Wire.EthernetHeader && !_portOfOwned[si].AcceptsVlan(frame))
                reason = DropReason.VlanNotConfigured;
            int owner = reason == DropReason.None ? registry.OwnerOf(in p) : Index;
            if (owner < 0)
                owner = Index; // a later fragment whose first was not seen yet: it waits here
            if (owner != Index)
            {
                if (workers[owner].Inbox[Index].TryPush(d.Addr, (int)d.Len))
                {
                    Counters.HandedOff++;
                }
                else
                {
                    Counters.Drop(DropReason.HandoffFull);
                    _umem.Free(d.Addr);
                }
                continue;
            }
            Verdict v;
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
                if (v == Verdict.Drop && Processor.LastDropReason is DropReason.TtlExceeded or DropReason.FragmentationNeeded &&
                    AnswerWithIcmp(_portOfOwned[si], d.Addr, (int)d.Len, now))
                    continue;
            }
            Complete(v, d.Addr, (int)d.Len, egress, hop, now);
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
        while ((n = ring.Drain(_handoffScratch)) > 0)
        {
            for (int i = 0; i < n; i++)
            {
                var h = _handoffScratch[i];
                var frame = _umem.GetFrame(h.Addr, h.Length);
                var v = Processor.Process(frame, now, out int egress, out IpAddr hop);
                Complete(v, h.Addr, h.Length, egress, hop, now);
            }
            total += n;
        }
        return total;
    }

    private void Complete(Verdict v, ulong addr, int len, int egress, in IpAddr hop, long now)
    {
        if (v == Verdict.Transmit)
            TransmitTagged(egress, addr, len, Processor.LastEgressVlan);
        else if (v == Verdict.Hold)
            Hold(addr, len, hop, now);
        else if (v == Verdict.HoldFragment)
            HoldFragment(addr, len, now);
        else
            _umem.Free(addr);
    }

    /// <summary>Sends a frame with the 802.1Q tag its route asks for (vlan 0: none): a tag is rewritten in place,
    /// pushed into the UMEM headroom in front of the frame, or popped, moving only the two MAC addresses.</summary>
    private void TransmitTagged(int egress, ulong addr, int len, ushort vlan)
    {
        if (vlan == 0 && (len < 18 || _umem.GetFrame(addr, 14)[12] != 0x81))
        {
            Transmit(egress, addr, len); // untagged in and out: the common case, nothing to move
            return;
        }
        var whole = _umem.GetWholeFrame(addr, out int offset);
        int start = offset;
        if (!VlanTags.Retag(whole, ref offset, ref len, vlan))
        {
            Counters.Drop(DropReason.Malformed); // no headroom: never with the kernel's XDP_PACKET_HEADROOM
            _umem.Free(addr);
            return;
        }
        Transmit(egress, (ulong)((long)addr + offset - start), len);
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

    private void Transmit(int egressIfIndex, ulong addr, int len)
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
        if (si < 0)
        {
            Counters.Drop(DropReason.EgressNotAttached);
            _umem.Free(addr);
            return;
        }
        var tx = _owned[si];
        if (!tx.Tx.Reserve(1, out uint idx))
        {
            Counters.Drop(DropReason.TxRingFull);
            _umem.Free(addr);
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

    private void Hold(ulong addr, int len, in IpAddr hop, long now)
    {
        if (_heldCount == _held.Length)
        {
            Counters.Drop(DropReason.HoldQueueFull);
            _umem.Free(addr);
            return;
        }
        _held[_heldCount++] = new HeldFrame
        {
            Addr = addr, Length = len, NextHop = hop, Deadline = now + _dp.Config.Engine.NeighborWaitMilliseconds,
            Vlan = Processor.LastEgressVlan,
        };
        Counters.Held++;
    }

    private void HoldFragment(ulong addr, int len, long now)
    {
        if (_fragmentsHeldCount == _fragmentsHeld.Length)
        {
            Counters.Drop(DropReason.Fragment);
            _umem.Free(addr);
            return;
        }
        _fragmentsHeld[_fragmentsHeldCount++] = new HeldFrame { Addr = addr, Length = len, Deadline = now + FragmentWaitMs };
    }

    /// <summary>Runs waiting later fragments again: handed to the worker that saw their first fragment, or
    /// forwarded, or kept until their deadline, then dropped as `fragment`.</summary>
    private void RetryFragments(long now)
    {
        var registry = Processor.Registry;
        var workers = _dp.Workers;
        int kept = 0;
        for (int i = 0; i < _fragmentsHeldCount; i++)
        {
            var h = _fragmentsHeld[i];
            var frame = _umem.GetFrame(h.Addr, h.Length);
            if (PacketParser.Parse(frame, out var p) != DropReason.None)
            {
                _umem.Free(h.Addr);
                continue;
            }
            int owner = registry.OwnerOf(in p);
            if (owner >= 0 && owner != Index)
            {
                if (workers[owner].Inbox[Index].TryPush(h.Addr, h.Length))
                {
                    Counters.HandedOff++;
                    workers[owner].Inbox[Index].Publish();
                    workers[owner].Wakeup.Signal();
                }
                else
                {
                    Counters.Drop(DropReason.HandoffFull);
                    _umem.Free(h.Addr);
                }
                continue;
            }
            var v = Processor.Process(frame, in p, now, out int egress, out IpAddr hop);
            if (v == Verdict.HoldFragment)
            {
                if (now < h.Deadline)
                {
                    _fragmentsHeld[kept++] = h;
                }
                else
                {
                    Counters.Drop(DropReason.Fragment);
                    _umem.Free(h.Addr);
                }
                continue;
            }
            Complete(v, h.Addr, h.Length, egress, hop, now);
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
            if (v == Verdict.Transmit)
            {
                TransmitTagged(egress, h.Addr, h.Length, Processor.LastEgressVlan != 0 ? Processor.LastEgressVlan : h.Vlan);
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
    }
}
