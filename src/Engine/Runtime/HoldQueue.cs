using ZonLb.Engine.Packets;
using ZonLb.Native.Abi;

namespace ZonLb.Engine.Runtime;

/// <summary>A frame a worker keeps for a while (see <see cref="HoldQueue"/>).</summary>
internal struct HeldFrame
{
    public ulong Addr;
    public int Length;
    /// <summary>The address whose neighbour the frame waits for (neighbour wait only).</summary>
    public IpAddr NextHop;
    public long Deadline;
    /// <summary>The VLAN the frame leaves with when its route gives none (the client's).</summary>
    public ushort Vlan;
    /// <summary>Multi-buffer: the frame's other buffers (RestCount of them, in an array from the pool), or null.</summary>
    public XdpDesc[]? Rest;
    public int RestCount;

    public readonly ReadOnlySpan<XdpDesc> RestSpan => Rest == null ? default : Rest.AsSpan(0, RestCount);
}

/// <summary>
/// Frames a worker keeps until something they wait for happens or their deadline passes: translated frames whose
/// next hop's neighbour is being resolved, and later fragments whose first fragment has not been seen. Bounded; a
/// chain's other buffers are kept in arrays from a pool the worker's queues share (no allocation). The owner goes
/// through the frames each round, keeps some (<see cref="KeepAs"/>) and then <see cref="Truncate"/>s.
/// </summary>
internal sealed class HoldQueue
{
    public const int Capacity = 256;

    private readonly HeldFrame[] _frames = new HeldFrame[Capacity];
    private readonly Stack<XdpDesc[]> _restArrays;
    private int _count;

    /// <param name="restArrays">Arrays for chains' other buffers, shared by the worker's queues.</param>
    public HoldQueue(Stack<XdpDesc[]> restArrays) => _restArrays = restArrays;

    /// <summary>Arrays for the other buffers of held chains: 64 chains at once, each up to the kernel's 17 fragments.</summary>
    public static Stack<XdpDesc[]> NewRestArrays(int maxRest)
    {
        var s = new Stack<XdpDesc[]>(64);
        for (int i = 0; i < 64; i++)
            s.Push(new XdpDesc[maxRest]);
        return s;
    }

    public int Count => _count;

    /// <summary>UMEM frames held (a chain's buffers each count).</summary>
    public int Frames
    {
        get
        {
            int n = _count;
            for (int i = 0; i < _count; i++)
                n += _frames[i].RestCount;
            return n;
        }
    }

    public HeldFrame this[int i] => _frames[i];

    /// <summary>Keeps a frame; false when the queue or the arrays for chains are full (the caller drops it).</summary>
    public bool TryAdd(ulong addr, int length, in IpAddr nextHop, ushort vlan, long deadline, ReadOnlySpan<XdpDesc> rest)
    {
        if (_count == Capacity)
            return false;
        var h = new HeldFrame { Addr = addr, Length = length, NextHop = nextHop, Vlan = vlan, Deadline = deadline };
        if (!rest.IsEmpty)
        {
            if (!_restArrays.TryPop(out var a))
                return false;
            rest.CopyTo(a);
            h.Rest = a;
            h.RestCount = rest.Length;
        }
        _frames[_count++] = h;
        return true;
    }

    /// <summary>During a pass: frame h stays, at position kept (at most its own).</summary>
    public void KeepAs(int kept, in HeldFrame h) => _frames[kept] = h;

    /// <summary>During a pass: frame h leaves the queue (its buffers are the caller's now); its array goes back.</summary>
    public void Release(in HeldFrame h)
    {
        if (h.Rest != null)
            _restArrays.Push(h.Rest);
    }

    /// <summary>Ends a pass: the first kept frames stay.</summary>
    public void Truncate(int kept) => _count = kept;
}
