using ZonLb.Engine.Packets;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Routing;

/// <summary>Routes and neighbours (ARP and NDP) from the kernel of the caller's network namespace, over rtnetlink.</summary>
internal sealed class KernelRouteSource : IRouteSource, IDisposable
{
    private readonly RtNetlink _nl = new();

    public RouteAnswer Lookup(IpAddr destination)
    {
        var route = _nl.GetRoute(destination.ToIPAddress(), out _);
        if (route == null || route.OutIfIndex == 0)
            return default;
        var hop = route.Gateway != null ? IpAddr.From(route.Gateway) : destination;
        var src = route.PreferredSource != null ? IpAddr.From(route.PreferredSource) : default;
        return new RouteAnswer(true, route.OutIfIndex, hop, src);
    }

    public byte[]? Neighbor(int ifIndex, IpAddr address)
    {
        var n = _nl.GetNeighbor(ifIndex, address.ToIPAddress());
        return n is { IsUsable: true } u ? u.Mac!.GetAddressBytes() : null;
    }

    public void Resolve(int ifIndex, IpAddr address) => _nl.TriggerNeighborResolution(ifIndex, address.ToIPAddress());

    public void Dispose() => _nl.Dispose();
}
