using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Native.Abi;

namespace ZonLb.Engine.Runtime;

/// <summary>Held frames: translated frames waiting for a neighbour, later fragments waiting for their first.</summary>
internal sealed partial class Worker
{
    private void Hold(ulong addr, int len, in Forwarding f, long now, ReadOnlySpan<XdpDesc> rest)
    {
        if (!_held.TryAdd(addr, len, f.NextHop, f.Vlan, now + _dp.Config.Engine.NeighborWaitMilliseconds, rest))
        {
            Counters.Drop(DropReason.HoldQueueFull);
            Free(addr, rest);
            return;
        }
        Counters.Held++;
    }

    private void HoldFragment(ulong addr, int len, long now, ReadOnlySpan<XdpDesc> rest)
    {
        if (!_fragmentsHeld.TryAdd(addr, len, default, 0, now + FragmentWaitMs, rest))
        {
            Counters.Drop(DropReason.Fragment);
            Free(addr, rest);
        }
    }

    /// <summary>Retries the next hop of frames waiting for a neighbour: sent once it is resolved, dropped as
    /// <c>neighbor_unresolved</c> at their deadline.</summary>
    private void RetryHeld(long now)
    {
        int kept = 0;
        for (int i = 0; i < _held.Count; i++)
        {
            var h = _held[i];
            var frame = _umem.GetFrame(h.Addr, h.Length);
            var v = Processor.RetryHeld(frame, h.NextHop, now, out var f);
            if (v == Verdict.Hold && now < h.Deadline)
            {
                _held.KeepAs(kept++, in h);
                continue;
            }
            if (v == Verdict.Transmit)
            {
                TransmitTagged(f.EgressIfIndex, h.Addr, h.Length, f.Vlan != 0 ? f.Vlan : h.Vlan, h.RestSpan);
            }
            else
            {
                if (v == Verdict.Hold)
                    Counters.Drop(DropReason.NeighborUnresolved);
                Free(h.Addr, h.RestSpan);
            }
            _held.Release(in h);
        }
        _held.Truncate(kept);
    }

    /// <summary>Runs waiting later fragments again: handed to the worker that saw their first fragment, or
    /// forwarded, or kept until their deadline, then dropped as `fragment`.</summary>
    private void RetryFragments(long now)
    {
        var table = Processor.Table;
        var workers = _dp.Workers;
        int kept = 0;
        for (int i = 0; i < _fragmentsHeld.Count; i++)
        {
            var h = _fragmentsHeld[i];
            var rest = h.RestSpan;
            if (ParseChain(h.Addr, h.Length, rest, out var p) != DropReason.None)
            {
                Free(h.Addr, rest);
                _fragmentsHeld.Release(in h);
                continue;
            }
            int owner = table.OwnerOf(in p);
            if (owner >= 0 && owner != Index)
            {
                if (HandOff(owner, h.Addr, h.Length, rest))
                {
                    workers[owner].Inbox[Index].Publish();
                    workers[owner].Wakeup.Signal();
                }
                _fragmentsHeld.Release(in h);
                continue;
            }
            var v = Processor.Process(_umem.GetFrame(h.Addr, h.Length), in p, now, out var f);
            if (v == Verdict.HoldFragment)
            {
                if (now < h.Deadline)
                {
                    _fragmentsHeld.KeepAs(kept++, in h);
                    continue;
                }
                Counters.Drop(DropReason.Fragment);
                v = Verdict.Drop;
            }
            Complete(v, h.Addr, h.Length, in f, now, rest);
            _fragmentsHeld.Release(in h);
        }
        _fragmentsHeld.Truncate(kept);
    }
}
