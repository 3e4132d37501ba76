using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Routing;

/// <summary>A route answer: egress interface index and next-hop address (the gateway, or the destination itself when
/// on-link). Not found and not pending: no route. Pending: the question is on its way (hold the frame, ask again).</summary>
internal readonly record struct RouteAnswer(bool Found, int IfIndex, IpAddr NextHop, IpAddr PreferredSource, bool Pending = false)
{
    public static RouteAnswer Asked => new(false, 0, default, default, Pending: true);
}

/// <summary>
/// Where next hops come from: the kernel (through <see cref="RouteResolver"/>, never waiting on the worker) in
/// production, a fixed table in unit tests. Called only on cache misses and refreshes, never per packet.
/// </summary>
internal interface IRouteSource
{
    RouteAnswer Lookup(IpAddr destination);

    /// <summary>The MAC of a neighbour when the kernel has a usable one; null otherwise.</summary>
    byte[]? Neighbor(int ifIndex, IpAddr address);

    /// <summary>Asks the kernel to resolve a neighbour (ARP or NDP); the answer shows in a later <see cref="Neighbor"/> call.</summary>
    void Resolve(int ifIndex, IpAddr address);
}
