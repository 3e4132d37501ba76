using ZonLb.Testing;

namespace ZonLb.UnitTests;

/// <summary>
/// The topology the pipeline tests share: client -- [ifindex 2 "lbc" | ifindex 3 "lbs"] -- backend, with the
/// MACs of the load balancer's two ports and of the neighbours behind them.
/// </summary>
internal static class TestTopology
{
    public static readonly byte[] LbcMac = { 2, 0, 0, 0, 0xC, 1 };
    public static readonly byte[] LbsMac = { 2, 0, 0, 0, 0x5, 1 };
    public static readonly byte[] ClientMac = { 2, 0, 0, 0, 0xC, 2 };
    public static readonly byte[] BackendMac = { 2, 0, 0, 0, 0x5, 2 };

    /// <summary>Routes of both families: the client's subnets (10.10.0.0/24, fd00:10::/64) on lbc, the backends'
    /// (10.20.0.0/24, fd00:20::/64) on lbs, with the client (.2 / ::2) and the first backend (.2 / ::2) resolved.</summary>
    public static FixedRoutes Routes() => new FixedRoutes()
        .Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3).Subnet("fd00:10::", 2).Subnet("fd00:20::", 3)
        .Neighbor("10.10.0.2", ClientMac).Neighbor("10.20.0.2", BackendMac)
        .Neighbor("fd00:10::2", ClientMac).Neighbor("fd00:20::2", BackendMac);
}
