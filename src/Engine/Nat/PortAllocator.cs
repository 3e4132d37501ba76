namespace ZonLb.Engine.Nat;

/// <summary>
/// Hands out NAT source ports (or ICMP echo ids) from a range for one (SNAT address, protocol), never the
/// same port twice while it is in use. Allocation walks from a rotating cursor, so a port just released is
/// not handed out again at once.
/// </summary>
internal sealed class PortAllocator
{
    private readonly bool[] _used;
    private int _cursor;

    private readonly int _first;
    private readonly int _stride;

    /// <param name="stride">Only ports p with p % stride == offset are handed out (one share per worker).</param>
    public PortAllocator(ushort min, ushort max, int stride = 1, int offset = 0)
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
        _used = new bool[count];
    }

    public ushort Min { get; }
    public ushort Max { get; }

    /// <summary>How many ports this allocator can hand out.</summary>
    public int Capacity => _used.Length;
    public int InUse { get; private set; }

    /// <summary>False when every port of the range is in use.</summary>
    public bool TryAllocate(out ushort port)
    {
        for (int n = 0; n < _used.Length; n++)
        {
            int i = _cursor;
            _cursor = _cursor + 1 == _used.Length ? 0 : _cursor + 1;
            if (!_used[i])
            {
                _used[i] = true;
                InUse++;
                port = (ushort)(_first + i * _stride);
                return true;
            }
        }
        port = 0;
        return false;
    }

    public void Release(ushort port)
    {
        int d = port - _first;
        int i = d / _stride;
        if (d >= 0 && d % _stride == 0 && (uint)i < (uint)_used.Length && _used[i])
        {
            _used[i] = false;
            InUse--;
        }
    }
}
