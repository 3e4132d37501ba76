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
}
