using ZonLb.Native.Bpf;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// The steering program's XSKMAP slots (<see cref="XdpProgram.MaxSockets"/>): each interface takes a contiguous run,
/// one slot per queue, and gives it back when the interface goes away, so that an interface deleted and created
/// again, however often, takes slots that are free (first fit) and the map never runs out while the sockets it
/// needs at once fit.
/// </summary>
internal sealed class XskMapSlots
{
    private readonly bool[] _taken;

    public XskMapSlots(int capacity = XdpProgram.MaxSockets) => _taken = new bool[capacity];

    /// <summary>Slots taken now.</summary>
    public int Taken
    {
        get
        {
            int n = 0;
            foreach (bool t in _taken)
                n += t ? 1 : 0;
            return n;
        }
    }

    /// <summary>Takes count contiguous slots (the first free run that fits); false when none does.</summary>
    public bool TryTake(int count, out uint first)
    {
        for (int start = 0; start + count <= _taken.Length; start++)
        {
            int run = 0;
            while (run < count && !_taken[start + run])
                run++;
            if (run == count)
            {
                for (int i = 0; i < count; i++)
                    _taken[start + i] = true;
                first = (uint)start;
                return true;
            }
            start += run; // the slot after the run is taken: look past it
        }
        first = 0;
        return false;
    }

    /// <summary>Gives back a run taken with <see cref="TryTake"/>.</summary>
    public void Release(uint first, int count)
    {
        for (int i = 0; i < count; i++)
            _taken[first + i] = false;
    }
}
