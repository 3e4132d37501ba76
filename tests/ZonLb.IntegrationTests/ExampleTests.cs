using Xunit.Abstractions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>Every examples/&lt;topology&gt;/run.sh is run, so that the examples never rot.</summary>
[Collection("dataplane")]
public class ExampleTests
{
    private readonly ITestOutputHelper _out;

    public ExampleTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> Examples() =>
        Directory.GetDirectories(Path.Combine(Command.RepoRoot(), "examples"))
            .Where(d => File.Exists(Path.Combine(d, "run.sh")))
            .Select(d => new object[] { Path.GetFileName(d) });

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task The_example_runs_and_checks_its_own_traffic(string example)
    {
        string root = Command.RepoRoot();
        Assert.True(File.Exists(Path.Combine(root, "examples", example, "README.md")), $"examples/{example} has no README.md");
        var r = await Command.RunScriptAsync(root, Path.Combine("examples", example, "run.sh"), TimeSpan.FromMinutes(2));
        _out.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.DoesNotContain("FAILED", r.Output);
    }
}
