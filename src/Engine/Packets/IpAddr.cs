using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace ZonLb.Engine.Packets;

/// <summary>
/// An IPv4 or IPv6 address as two 64-bit numbers (the address's bytes in network order, big-endian halves).
/// IPv4 addresses are held IPv4-mapped (::ffff:a.b.c.d), so one type, one hash and one comparison serve both
/// families on the data path; <see cref="IsV4"/> tells them apart.
/// </summary>
internal readonly struct IpAddr : IEquatable<IpAddr>
{
    private const ulong V4MappedPrefix = 0x0000_FFFF_0000_0000UL;

    /// <summary>Bytes 0-7 of the address, big-endian.</summary>
    public readonly ulong Hi;
    /// <summary>Bytes 8-15 of the address, big-endian.</summary>
    public readonly ulong Lo;

    public IpAddr(ulong hi, ulong lo)
    {
        Hi = hi;
        Lo = lo;
    }

    /// <summary>The IPv4 address whose host-order number is <paramref name="v4"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IpAddr FromV4(uint v4) => new(0, V4MappedPrefix | v4);

    public bool IsV4
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Hi == 0 && (Lo & 0xFFFF_FFFF_0000_0000UL) == V4MappedPrefix;
    }

    /// <summary>The host-order number of an IPv4 address (meaningless for IPv6).</summary>
    public uint V4 => (uint)Lo;

    public bool IsUnspecified => Hi == 0 && (Lo == 0 || Lo == V4MappedPrefix);

    /// <summary>Reads 16 bytes (an IPv6 address field).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IpAddr ReadV6(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(b), BinaryPrimitives.ReadUInt64BigEndian(b.Slice(8)));

    /// <summary>Reads 4 bytes (an IPv4 address field).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IpAddr ReadV4(ReadOnlySpan<byte> b) => FromV4(BinaryPrimitives.ReadUInt32BigEndian(b));

    /// <summary>Writes the 16 bytes of an IPv6 address field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteV6(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, Hi);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(8), Lo);
    }

    /// <summary>The sum of the address's 16-bit words (for checksums), not folded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong WordSum() => IsV4
        ? (Lo >> 16 & 0xFFFF) + (Lo & 0xFFFF)
        : (Hi >> 48) + (Hi >> 32 & 0xFFFF) + (Hi >> 16 & 0xFFFF) + (Hi & 0xFFFF) +
          (Lo >> 48) + (Lo >> 32 & 0xFFFF) + (Lo >> 16 & 0xFFFF) + (Lo & 0xFFFF);

    /// <summary>The sum of the one's complements of the address's 16-bit words (for RFC 1624 updates).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ComplementWordSum() => IsV4 ? 2 * 0xFFFFUL - WordSum() : 8 * 0xFFFFUL - WordSum();

    public static IpAddr From(IPAddress a)
    {
        Span<byte> b = stackalloc byte[16];
        if (a.AddressFamily == AddressFamily.InterNetwork)
        {
            a.TryWriteBytes(b, out _);
            return ReadV4(b);
        }
        if (a.IsIPv4MappedToIPv6)
            return From(a.MapToIPv4());
        a.TryWriteBytes(b, out _);
        return ReadV6(b);
    }

    public IPAddress ToIPAddress()
    {
        if (IsV4)
            return new IPAddress(new[] { (byte)(V4 >> 24), (byte)(V4 >> 16), (byte)(V4 >> 8), (byte)V4 });
        var b = new byte[16];
        WriteV6(b);
        return new IPAddress(b);
    }

    public static IpAddr Parse(string s) => From(IPAddress.Parse(s));

    public bool Equals(IpAddr o) => Hi == o.Hi && Lo == o.Lo;

    public override bool Equals(object? obj) => obj is IpAddr a && Equals(a);

    public override int GetHashCode()
    {
        ulong h = (Hi * 0x9E3779B97F4A7C15UL) ^ Lo;
        h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9UL;
        return (int)(h ^ (h >> 32));
    }

    public static bool operator ==(IpAddr a, IpAddr b) => a.Equals(b);
    public static bool operator !=(IpAddr a, IpAddr b) => !a.Equals(b);

    public override string ToString() => IsV4
        ? $"{V4 >> 24}.{(V4 >> 16) & 255}.{(V4 >> 8) & 255}.{V4 & 255}"
        : ToIPAddress().ToString();

    /// <summary>"a.b.c.d:port" or "[v6]:port".</summary>
    public string WithPort(ushort port) => IsV4 ? $"{this}:{port}" : $"[{this}]:{port}";
}
