using Xunit.Abstractions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>Every examples/&lt;topology&gt;/run.sh is run, so that the examples never rot.</summary>
[Collection("dataplane")]
public class ExampleTests
{
    private readonly ITestOutputHelper _out;

    public ExampleTests(ITestOutputHelper output) => _out = output;

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "examples")) && File.Exists(Path.Combine(d.FullName, "ZonLb.sln")))
                return d.FullName;
        throw new InvalidOperationException("the repository root was not found above " + AppContext.BaseDirectory);
    }

    public static IEnumerable<object[]> Examples() =>
        Directory.GetDirectories(Path.Combine(RepoRoot(), "examples"))
            .Where(d => File.Exists(Path.Combine(d, "run.sh")))
            .Select(d => new object[] { Path.GetFileName(d) });

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task The_example_runs_and_checks_its_own_traffic(string example)
    {
        string root = RepoRoot();
        Assert.True(File.Exists(Path.Combine(root, "examples", example, "README.md")), $"examples/{example} has no README.md");
        var psi = new System.Diagnostics.ProcessStartInfo("bash", new[] { Path.Combine(root, "examples", example, "run.sh") })
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = root,
        };
        psi.Environment["ZONLB_DLL"] = ZonLbProcess.CliPath;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(limit.Token);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill(entireProcessTree: true);
        }
        string output = await stdout + await stderr;
        _out.WriteLine(output);
        Assert.True(p.ExitCode == 0, output);
        Assert.DoesNotContain("FAILED", output);
    }
}
