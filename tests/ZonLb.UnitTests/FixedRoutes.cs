using ZonLb.Engine.Routing;

namespace ZonLb.UnitTests;

/// <summary>A static FIB and neighbour table standing in for the kernel's: /24 routes, on-link next hops.</summary>
internal sealed class FixedRoutes : IRouteSource
{
    private readonly Dictionary<uint, int> _subnets = new();      // network (/24) -> ifindex
    private readonly Dictionary<uint, byte[]> _neighbors = new(); // address -> MAC
    public int ResolveRequests;
    public int LookupCount;

    public FixedRoutes Subnet(string network, int ifIndex)
    {
        _subnets[Parse(network) & 0xFFFFFF00] = ifIndex;
        return this;
    }

    public FixedRoutes Neighbor(string address, byte[] mac)
    {
        _neighbors[Parse(address)] = mac;
        return this;
    }

    public RouteAnswer Lookup(uint destination)
    {
        LookupCount++;
        return _subnets.TryGetValue(destination & 0xFFFFFF00, out int ifIndex)
            ? new RouteAnswer(true, ifIndex, destination, 0)
            : default;
    }

    public byte[]? Neighbor(int ifIndex, uint address) => _neighbors.GetValueOrDefault(address);

    public void Resolve(int ifIndex, uint address) => ResolveRequests++;

    public static uint Parse(string ip)
    {
        var b = System.Net.IPAddress.Parse(ip).GetAddressBytes();
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }
}
