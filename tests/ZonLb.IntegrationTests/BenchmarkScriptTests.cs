using System.Globalization;
using Xunit.Abstractions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>The end-to-end benchmark (bench/e2e/compare.sh), the command the README's Performance tables come
/// from, run briefly, so that it never rots: every path must forward.</summary>
[Collection("dataplane")]
public class BenchmarkScriptTests
{
    private readonly ITestOutputHelper _out;

    public BenchmarkScriptTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public async Task The_end_to_end_benchmark_forwards_udp_and_tcp_on_every_path_and_prints_a_row_for_each()
    {
        string root = Command.RepoRoot();
        // 1 s per case, 1 repeat: a smoke run, not a measurement
        var r = await Command.RunScriptAsync(root, Path.Combine("bench", "e2e", "compare.sh"), TimeSpan.FromMinutes(5), "1", "1");
        _out.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, r.Output);
        foreach (string path in new[] { "zonlb", "xskfwd", "nftables", "kernel", "xdp" })
        {
            // e.g. "zonlb      |   555753 [536180-587235] (1.00x) |   573112 [...] (1.00x) |  3.10 [3.04-3.20]"
            string? row = r.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith(path + " ", StringComparison.Ordinal) && l.Contains('|'));
            Assert.True(row != null, $"no row for {path}:\n{r.Output}");
            string[] cells = row.Split('|');
            Assert.True(Median(cells[1]) > 0, $"{path}: no UDP frame of 1 flow reached the sink: {row}");
            Assert.True(Median(cells[2]) > 0, $"{path}: no UDP frame of 1024 flows reached the sink: {row}");
            Assert.True(Median(cells[3]) > 0, $"{path}: no TCP throughput: {row}");
        }
    }

    /// <summary>The median a table cell starts with ("555753 [536180-587235] (1.00x)"); 0 when it has none.</summary>
    private static double Median(string cell) =>
        double.TryParse(cell.Trim().Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : 0;
}
