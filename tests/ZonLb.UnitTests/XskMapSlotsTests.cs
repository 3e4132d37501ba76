using ZonLb.Engine.Runtime;

namespace ZonLb.UnitTests;

public class XskMapSlotsTests
{
    [Fact]
    public void Interfaces_take_contiguous_runs_and_a_freed_run_is_taken_again()
    {
        var slots = new XskMapSlots(8);
        Assert.True(slots.TryTake(2, out uint a));
        Assert.True(slots.TryTake(3, out uint b));
        Assert.Equal((0u, 2u), (a, b));
        slots.Release(a, 2);
        Assert.True(slots.TryTake(2, out uint c));
        Assert.Equal(0u, c); // the freed run, first fit
        Assert.False(slots.TryTake(4, out _)); // 3 left at the end
        Assert.True(slots.TryTake(3, out uint d));
        Assert.Equal(5u, d);
    }

    [Fact]
    public void An_interface_deleted_and_created_again_a_thousand_times_never_runs_the_map_out()
    {
        var slots = new XskMapSlots(256);
        Assert.True(slots.TryTake(2, out _)); // the interface that stays
        for (int i = 0; i < 1000; i++)
        {
            Assert.True(slots.TryTake(4, out uint run), $"flap {i}: no slots left");
            slots.Release(run, 4);
        }
        Assert.Equal(2, slots.Taken);
    }
}
