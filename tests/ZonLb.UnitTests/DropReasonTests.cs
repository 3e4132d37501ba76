using ZonLb.Engine.Counters;

namespace ZonLb.UnitTests;

public class DropReasonTests
{
    /// <summary>Drop reason numbers leave the process (logs, metrics): they never change meaning.</summary>
    [Fact]
    public void Drop_reason_numbers_and_labels_are_frozen()
    {
        var expected = new (int, string)[]
        {
            (0, "none"), (1, "truncated"), (2, "malformed"), (3, "not_ip"), (4, "bad_ip_checksum"), (5, "fragment"),
            (6, "unsupported_protocol"), (7, "icmp_not_echo"), (8, "no_service"), (9, "no_connection"),
            (10, "ttl_exceeded"), (11, "nat_ports_exhausted"), (12, "connection_table_full"), (13, "no_route"),
            (14, "egress_not_attached"), (15, "neighbor_unresolved"), (16, "hold_queue_full"), (17, "tx_ring_full"),
            (18, "frame_pool_empty"), (19, "no_backend"), (20, "handoff_full"), (21, "fragmentation_needed"), (22, "mtu_exceeded"), (23, "vlan_not_configured"),
            (24, "bad_icmp_checksum"),
        };
        var actual = Enum.GetValues<DropReason>().Select(r => ((int)r, r.ToLabel())).ToArray();
        Assert.Equal(expected, actual);
        Assert.Equal(DropReasonNames.Count, expected.Length);
    }

    [Fact]
    public void Counters_format_only_non_zero_reasons()
    {
        var c = new EngineCounters();
        Assert.Equal("none", c.FormatDrops());
        c.Drop(DropReason.NoService);
        c.Drop(DropReason.NoService);
        c.Drop(DropReason.TtlExceeded);
        Assert.Equal("no_service=2 ttl_exceeded=1", c.FormatDrops());
        Assert.Equal(3, c.TotalDrops);
    }
}
