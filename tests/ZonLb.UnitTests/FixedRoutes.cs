using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;

namespace ZonLb.UnitTests;

/// <summary>A static FIB and neighbour table standing in for the kernel's: IPv4 /24 and IPv6 /64 routes,
/// on-link next hops.</summary>
internal sealed class FixedRoutes : IRouteSource
{
    private readonly Dictionary<IpAddr, int> _subnets = new();      // network -> ifindex
    private readonly Dictionary<IpAddr, byte[]> _neighbors = new(); // address -> MAC
    public int ResolveRequests;
    public int LookupCount;

    public FixedRoutes Subnet(string network, int ifIndex)
    {
        _subnets[Network(IpAddr.Parse(network))] = ifIndex;
        return this;
    }

    public FixedRoutes Neighbor(string address, byte[] mac)
    {
        _neighbors[IpAddr.Parse(address)] = mac;
        return this;
    }

    public RouteAnswer Lookup(IpAddr destination)
    {
        LookupCount++;
        return _subnets.TryGetValue(Network(destination), out int ifIndex)
            ? new RouteAnswer(true, ifIndex, destination, default)
            : default;
    }

    public byte[]? Neighbor(int ifIndex, IpAddr address) => _neighbors.GetValueOrDefault(address);

    public void Resolve(int ifIndex, IpAddr address) => ResolveRequests++;

    private static IpAddr Network(IpAddr a) => a.IsV4 ? IpAddr.FromV4(a.V4 & 0xFFFFFF00) : new IpAddr(a.Hi, 0);

    public static IpAddr Parse(string ip) => IpAddr.Parse(ip);
}
