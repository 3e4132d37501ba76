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
        string root = ExampleTests.RepoRoot();
        var psi = new System.Diagnostics.ProcessStartInfo("bash", new[] { Path.Combine(root, "tests", "soak", "soak.sh"), "60" })
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = root,
        };
        psi.Environment["ZONLB_DLL"] = ZonLbProcess.CliPath;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try
        {
            await p.WaitForExitAsync(limit.Token);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill(entireProcessTree: true); // a killed script cannot clean up; Topology.Create reaps its zsoak<pid>-* namespaces later
        }
        string output = await stdout + await stderr;
        _out.WriteLine(output);
        Assert.True(p.ExitCode == 0, output);
        Assert.Contains("soak: passed", output);
    }
}
