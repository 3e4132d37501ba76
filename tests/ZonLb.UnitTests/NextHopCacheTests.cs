using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;

namespace ZonLb.UnitTests;

/// <summary>The next-hop cache stays within its capacity, and what it drops to make room is what was not used.</summary>
public class NextHopCacheTests
{
    private static NextHopCache Cache(int capacity)
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2);
        for (int i = 1; i < 250; i++)
            routes.Neighbor($"10.10.0.{i}", new byte[] { 2, 0, 0, 0, 0, (byte)i });
        return new NextHopCache(routes, resolvedTtl: 60_000, pendingRetry: 1, capacity);
    }

    private static IpAddr A(int i) => IpAddr.Parse($"10.10.0.{i}");

    [Fact]
    public void A_flood_of_destinations_never_holds_more_than_the_capacity()
    {
        var cache = Cache(100);

        for (int i = 1; i < 250; i++)
            cache.Lookup(A(i), now: i, out _);

        Assert.Equal(100, cache.Count);
        Assert.Equal(149, cache.Evictions);
        Assert.Equal(NextHopState.Resolved, cache.Lookup(A(249), 1000, out var hop));
        Assert.Equal(249UL, (hop.Mac >> 40) & 0xFF);  // the latest is kept, with its neighbour's MAC
    }

    [Fact]
    public void A_destination_used_since_the_clock_last_passed_stays_and_an_unused_one_goes()
    {
        var cache = Cache(3);
        cache.Lookup(A(1), 0, out _);
        cache.Lookup(A(2), 0, out _);
        cache.Lookup(A(3), 0, out _);
        cache.Lookup(A(4), 1, out _);              // the hand clears every mark and takes the first slot: 1 goes
        int hint = -1;
        cache.Find(A(3), 2, ref hint);            // 3 is used again

        cache.Lookup(A(5), 3, out _);              // the hand is at 2, unused since it passed: 2 goes, not 3

        var kept = cache.Entries.Select(e => e.Key.ToString()).Order().ToList();
        Assert.Equal(new[] { "10.10.0.3", "10.10.0.4", "10.10.0.5" }, kept);
    }

    [Fact]
    public void A_connection_whose_slot_was_taken_finds_its_destination_again()
    {
        var cache = Cache(1);
        int hint = -1;
        cache.Find(A(1), 0, ref hint);
        cache.Lookup(A(2), 1, out _);              // takes the only slot

        ref readonly var hop = ref cache.Find(A(1), 2, ref hint);

        Assert.Equal(A(1), hop.Destination);
        Assert.Equal(NextHopState.Resolved, hop.State);
    }
}
