namespace ZonLb.Engine.Nat;

/// <summary>
/// Hands out NAT source ports (or ICMP echo ids) from a range for one (SNAT address, backend, protocol), never
/// the same port twice while it is held, and remembers which connection holds each one. Allocation starts at a
/// random place in the range and takes the first free port from there (RFC 6056's simple port randomization), so
/// the backend-side tuple of a new connection cannot be guessed from the last one. When every port is held, the
/// caller looks at a random sample of holders (<see cref="SampleStart"/>) and may evict one to take its port
/// over (<see cref="TryClaim"/>): conntrack's early drop and TIME_WAIT reuse.
/// </summary>
internal sealed class PortAllocator
{
    /// <summary>A port handed out whose connection is not in the table yet.</summary>
    public const int Reserved = int.MaxValue;

    private readonly int[] _holder; // connection index + 1; 0: free
    private readonly int _first;
    private readonly int _stride;
    private uint _random;

    /// <param name="stride">Only ports p with p % stride == offset are handed out (one share per worker).</param>
    /// <param name="seed">Seeds the random start (0: from the process's random source).</param>
    public PortAllocator(ushort min, ushort max, int stride = 1, int offset = 0, uint seed = 0)
    {
        if (min == 0 || max < min)
            throw new ArgumentOutOfRangeException(nameof(min), $"invalid port range {min}-{max}");
        if (stride < 1 || offset < 0 || offset >= stride)
            throw new ArgumentOutOfRangeException(nameof(offset), $"share {offset} of {stride}");
        Min = min;
        Max = max;
        _stride = stride;
        _first = min + ((offset - min % stride) % stride + stride) % stride;
        int count = _first > max ? 0 : (max - _first) / stride + 1;
        _holder = new int[count];
        _random = seed != 0 ? seed : (uint)Random.Shared.Next(1, int.MaxValue);
    }

    public ushort Min { get; }
    public ushort Max { get; }

    /// <summary>How many ports this allocator can hand out.</summary>
    public int Capacity => _holder.Length;
    public int InUse { get; private set; }

    /// <summary>A free port from a random place in the range; false when every port is held.</summary>
    public bool TryAllocate(out ushort port)
    {
        if (InUse < _holder.Length)
        {
            int start = SampleStart();
            for (int n = 0, i = start; n < _holder.Length; n++, i = i + 1 == _holder.Length ? 0 : i + 1)
            {
                if (_holder[i] == 0)
                {
                    _holder[i] = Reserved;
                    InUse++;
                    port = PortAt(i);
                    return true;
                }
            }
        }
        port = 0;
        return false;
    }

    /// <summary>Takes a port that was just released (after its holder was evicted); false if it is held.</summary>
    public bool TryClaim(ushort port)
    {
        int i = IndexOf(port);
        if (i < 0 || _holder[i] != 0)
            return false;
        _holder[i] = Reserved;
        InUse++;
        return true;
    }

    /// <summary>Records the connection that holds a port handed out.</summary>
    public void SetHolder(ushort port, int connection)
    {
        int i = IndexOf(port);
        if (i >= 0 && _holder[i] != 0)
            _holder[i] = connection + 1;
    }

    /// <summary>The connection holding the port at range index i: -1 when free, <see cref="Reserved"/>-1 while
    /// being set up.</summary>
    public int HolderAt(int i) => _holder[i] - 1;

    /// <summary>The port at range index i (0 to <see cref="Capacity"/> - 1).</summary>
    public ushort PortAt(int i) => (ushort)(_first + i * _stride);

    /// <summary>A random range index, where a scan for a free port or a sample of holders begins.</summary>
    public int SampleStart()
    {
        // xorshift32: cheap, and enough to make the next port unpredictable to a sender who sees a few
        uint x = _random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        _random = x;
        return (int)(x % (uint)_holder.Length);
    }

    public void Release(ushort port)
    {
        int i = IndexOf(port);
        if (i >= 0 && _holder[i] != 0)
        {
            _holder[i] = 0;
            InUse--;
        }
    }

    private int IndexOf(ushort port)
    {
        int d = port - _first;
        if (d < 0 || d % _stride != 0)
            return -1;
        int i = d / _stride;
        return (uint)i < (uint)_holder.Length ? i : -1;
    }
}
