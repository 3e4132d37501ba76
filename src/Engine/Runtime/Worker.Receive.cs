using ZonLb.Engine.Checksums;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Native.Abi;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>A worker's batch: received, looked at, translated, handed off or completed.</summary>
internal sealed partial class Worker
{
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
            if (_candidate[i])
            {
                // an established flow's packet, the common case; a connection in this worker's table is
                // this worker's, so no owner to ask
                if (Processor.TryFastLane(frame, now, out var f))
                {
                    Complete(Verdict.Transmit, d.Addr, (int)d.Len, in f, now);
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
        if (reason != DropReason.None)
        {
            Counters.Drop(reason);
            Free(addr, rest);
            return;
        }
        var v = Processor.Process(frame, in p, now, out var f);
        if (v == Verdict.Transmit && f.TimeWaitResetSeq is uint resetSeq)
            SendTimeWaitReset(in f, frame, resetSeq);
        if (v == Verdict.Drop && IcmpResponder.Answers(in f) && AnswerWithIcmp(_portOfOwned[si], addr, len, in p, in f, now))
        {
            FreeRest(rest); // the answer quotes the start of the frame, from its first buffer
            return;
        }
        Complete(v, addr, len, in f, now, rest);
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
        Free(addr, rest);
        return false;
    }

    /// <summary>Turns a frame whose TTL ran out, or that is too big for its egress interface, into its ICMP error
    /// back out of the port it came in on (<see cref="IcmpResponder"/>); false when the frame should just be freed.</summary>
    private bool AnswerWithIcmp(Port ingress, ulong addr, int len, in ParsedPacket p, in Forwarding f, long now)
    {
        var whole = _umem.GetWholeFrame(addr, out int offset);
        int n = _icmp.TryAnswer(whole, offset, len, in p, in f, ingress, now);
        if (n == 0)
            return false;
        Transmit(ingress.IfIndex, addr, n);
        return true;
    }

    private void InjectFault()
    {
        if (Diagnostics.FaultInjection.Hang && Index == 0)
            Thread.Sleep(Timeout.Infinite);
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
                var v = Processor.Process(frame, now, out var f);
                if (v == Verdict.Transmit && f.TimeWaitResetSeq is uint resetSeq)
                    SendTimeWaitReset(in f, frame, resetSeq);
                Complete(v, h.Addr, h.Length, in f, now);
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
            Free(h.Addr, rest);
            return k;
        }
        var v = Processor.Process(_umem.GetFrame(h.Addr, h.Length), in p, now, out var f);
        Complete(v, h.Addr, h.Length, in f, now, rest);
        return k;
    }

    /// <summary>Does what the pipeline decided with a frame: sends it, holds it, or frees it.</summary>
    private void Complete(Verdict v, ulong addr, int len, in Forwarding f, long now, ReadOnlySpan<XdpDesc> rest = default)
    {
        if (f.FrameLength != 0 && rest.IsEmpty)
            len = f.FrameLength; // shortened by the pipeline (a UDP trailer)
        if (v == Verdict.Transmit)
            TransmitTagged(f.EgressIfIndex, addr, len, f.Vlan, rest);
        else if (v == Verdict.Hold)
            Hold(addr, len, in f, now, rest);
        else if (v == Verdict.HoldFragment)
            HoldFragment(addr, len, now, rest);
        else
            Free(addr, rest);
    }

    /// <summary>Ends the backend's TIME_WAIT on the tuple a new connection's SYN (translated, about to be sent) takes
    /// over: a reset built from the SYN in a frame of its own, queued just before it on the same ring.</summary>
    private void SendTimeWaitReset(in Forwarding f, ReadOnlySpan<byte> syn, uint seq)
    {
        if (!_frames.TryAllocate(out ulong addr))
            return; // no frame: the SYN goes alone, and the client tries again if the backend refuses it
        var whole = _umem.GetWholeFrame(addr, out int offset);
        int n = TimeWaitReset.Build(syn, seq, whole.Slice(offset));
        if (n == 0)
        {
            _frames.Free(addr);
            return;
        }
        Counters.TimeWaitResets++;
        TransmitTagged(f.EgressIfIndex, addr, n, f.Vlan);
    }
}
