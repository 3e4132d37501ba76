using System.Net;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Routing;

/// <summary>Routes and neighbours from the kernel of the caller's network namespace, over rtnetlink.</summary>
public sealed class KernelRouteSource : IRouteSource, IDisposable
{
    private readonly RtNetlink _nl = new();

    public RouteAnswer Lookup(uint destination)
    {
        var route = _nl.GetRoute(ToAddress(destination), out _);
        if (route == null || route.OutIfIndex == 0)
            return default;
        uint hop = route.Gateway != null ? FromAddress(route.Gateway) : destination;
        uint src = route.PreferredSource != null ? FromAddress(route.PreferredSource) : 0;
        return new RouteAnswer(true, route.OutIfIndex, hop, src);
    }

    public byte[]? Neighbor(int ifIndex, uint address)
    {
        var n = _nl.GetNeighbor(ifIndex, ToAddress(address));
        return n is { IsUsable: true } u ? u.Mac!.GetAddressBytes() : null;
    }

    public void Resolve(int ifIndex, uint address) => _nl.TriggerNeighborResolution(ifIndex, ToAddress(address));

    public void Dispose() => _nl.Dispose();

    public static IPAddress ToAddress(uint a) => new(new[] { (byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a });

    public static uint FromAddress(IPAddress a)
    {
        Span<byte> b = stackalloc byte[4];
        if (!a.TryWriteBytes(b, out int n) || n != 4)
            throw new ArgumentException($"{a} is not an IPv4 address");
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }
}
