namespace ZonLb.Engine.Routing;

/// <summary>A route answer: egress interface index and next-hop address (the gateway, or the destination itself when on-link).</summary>
public readonly record struct RouteAnswer(bool Found, int IfIndex, uint NextHop, uint PreferredSource);

/// <summary>
/// Where next hops come from: the kernel (rtnetlink) in production, a fixed table in unit tests. Called only on
/// cache misses and refreshes, never per packet.
/// </summary>
public interface IRouteSource
{
    RouteAnswer Lookup(uint destination);

    /// <summary>The MAC of a neighbour when the kernel has a usable one; null otherwise.</summary>
    byte[]? Neighbor(int ifIndex, uint address);

    /// <summary>Asks the kernel to resolve a neighbour (ARP); the answer shows in a later <see cref="Neighbor"/> call.</summary>
    void Resolve(int ifIndex, uint address);
}
