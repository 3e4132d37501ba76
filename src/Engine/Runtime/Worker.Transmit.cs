using ZonLb.Engine.Checksums;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Native.Abi;
using ZonLb.Native.Interop;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>The TX side: tags, TX descriptors, kicks, completions, and the fill ring.</summary>
internal sealed partial class Worker
{
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
            Free(addr, rest);
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
        _frames.FreeBatch(_scratch.AsSpan(0, (int)n));
        s.Completion.Release(n);
        _txInFlight[si] -= n;
    }

    private void Refill(XskSocket s)
    {
        uint want = Math.Min(s.Fill.FreeEntries(s.Fill.Size), (uint)_scratch.Length);
        if (want == 0)
            return;
        int got = _frames.AllocateBatch(_scratch.AsSpan(0, (int)want));
        if (got == 0 || !s.Fill.Reserve((uint)got, out uint idx))
        {
            _frames.FreeBatch(_scratch.AsSpan(0, got));
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
            Free(addr, rest);
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

    /// <summary>Enough kicks for a full RX batch's worth of frames (Batch / 32), and some.</summary>
    private const int MaxKicksPerFlush = 8;

    /// <summary>Publishes this round's TX descriptors and kicks every socket whose TX ring still holds frames
    /// (copy mode sends at most 32 frames per kick).</summary>
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
}
