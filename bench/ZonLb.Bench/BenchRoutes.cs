using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;

namespace ZonLb.Bench;

/// <summary>A fixed FIB for the pipeline benchmarks: 10.20.0.0/24 and fd00:20::/32 leave by ifindex 3 (the
/// backend side), everything else by 2 (the client side); every neighbour is known.</summary>
internal sealed class BenchRoutes : IRouteSource
{
    public RouteAnswer Lookup(IpAddr destination) =>
        new(true, destination.IsV4 ? ((destination.V4 >> 8) == 0x0A1400 ? 3 : 2) : ((destination.Hi & 0xFFFF_0000UL) == 0x0020_0000UL ? 3 : 2), destination, default);

    public byte[]? Neighbor(int ifIndex, IpAddr address) => new byte[] { 2, 0, 0, 0, 0, (byte)ifIndex };

    public void Resolve(int ifIndex, IpAddr address) { }
}
