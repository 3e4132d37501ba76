using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Nat;

/// <summary>
/// The source addresses a backend's connections are translated to (a service's snat list, or the one address the
/// kernel prefers toward the backend). Each address has its own NAT port range toward the backend, so n addresses
/// hold n times the connections. Compared by value (a reload that keeps them changes nothing).
/// </summary>
internal readonly struct SnatAddresses : IEquatable<SnatAddresses>
{
    private readonly IpAddr[]? _addresses;

    public SnatAddresses(params IpAddr[] addresses) => _addresses = addresses.Length == 0 ? null : addresses.ToArray();

    /// <summary>None: direct server return translates no source.</summary>
    public static SnatAddresses None => default;

    public int Count => _addresses?.Length ?? 0;

    public IpAddr this[int i] => _addresses![i];

    /// <summary>The first address (the one reports name first); default when there is none.</summary>
    public IpAddr First => _addresses is { Length: > 0 } a ? a[0] : default;

    public bool Equals(SnatAddresses other)
    {
        if (Count != other.Count)
            return false;
        for (int i = 0; i < Count; i++)
            if (this[i] != other[i])
                return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is SnatAddresses o && Equals(o);

    public override int GetHashCode()
    {
        var h = new HashCode();
        for (int i = 0; i < Count; i++)
            h.Add(this[i]);
        return h.ToHashCode();
    }

    public static bool operator ==(SnatAddresses a, SnatAddresses b) => a.Equals(b);
    public static bool operator !=(SnatAddresses a, SnatAddresses b) => !a.Equals(b);

    /// <summary>"a" or "a, b".</summary>
    public override string ToString()
    {
        if (_addresses == null)
            return "";
        return string.Join(", ", _addresses.Select(a => a.ToString()));
    }
}
