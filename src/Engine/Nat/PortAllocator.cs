namespace ZonLb.Engine.Nat;

/// <summary>
/// Hands out NAT source ports (or ICMP echo ids) from a range for one (SNAT address, protocol), never the
/// same port twice while it is in use. Allocation walks from a rotating cursor, so a port just released is
/// not handed out again at once.
/// </summary>
public sealed class PortAllocator
{
    private readonly bool[] _used;
    private int _cursor;

    public PortAllocator(ushort min, ushort max)
    {
        if (min == 0 || max < min)
            throw new ArgumentOutOfRangeException(nameof(min), $"invalid port range {min}-{max}");
        Min = min;
        Max = max;
        _used = new bool[max - min + 1];
    }

    public ushort Min { get; }
    public ushort Max { get; }
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
                port = (ushort)(Min + i);
                return true;
            }
        }
        port = 0;
        return false;
    }

    public void Release(ushort port)
    {
        int i = port - Min;
        if ((uint)i < (uint)_used.Length && _used[i])
        {
            _used[i] = false;
            InUse--;
        }
    }
}
