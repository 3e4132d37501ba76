using Xunit.Abstractions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>The soak of tests/soak/soak.sh for 60 s (the long run, 30 min, is `sudo tests/soak/soak.sh 1800`).</summary>
[Collection("dataplane")]
public class SoakTests
{
    private readonly ITestOutputHelper _out;

    public SoakTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public async Task Sixty_seconds_of_mixed_traffic_lose_nothing_and_leak_nothing()
    {
        var r = await Command.RunScriptAsync(Command.RepoRoot(), Path.Combine("tests", "soak", "soak.sh"), TimeSpan.FromMinutes(4), "60");
        _out.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("soak: passed", r.Output);
    }
}
