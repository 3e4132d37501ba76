using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>The bash completion script, sourced into a real bash and driven as bash drives it on TAB.</summary>
public class CompletionTests
{
    /// <summary>COMPREPLY after TAB at the end of <paramref name="line"/>, one candidate per line.</summary>
    private static string[] Tab(string line)
    {
        var script = Command.Run("dotnet", new[] { ZonLbProcess.CliPath, "completion", "bash" }, TimeSpan.FromSeconds(30));
        Assert.True(script.ExitCode == 0, script.Output);
        string words = string.Join(' ', line.Split(' ').Select(w => $"'{w}'"));
        string bash = $$"""
            zonlb-afxdp() { dotnet '{{ZonLbProcess.CliPath}}' "$@"; }
            {{script.Stdout}}
            COMP_LINE='{{line}}'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=({{words}}); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            _zonlb_afxdp
            printf '%s\n' "${COMPREPLY[@]}"
            """;
        var r = Command.Run("bash", new[] { "-c", bash }, TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, r.Output);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void Tab_completes_a_command_name()
    {
        Assert.Equal(new[] { "stats", "status" }, Tab("zonlb-afxdp st").OrderBy(x => x));
    }

    [Fact]
    public void Tab_completes_a_commands_options()
    {
        var c = Tab("zonlb-afxdp run --");
        Assert.Contains("--config", c);
        Assert.Contains("--status-interval", c);
    }

    [Fact]
    public void Tab_completes_a_subcommand()
    {
        var c = Tab("zonlb-afxdp backend di");
        Assert.Equal(new[] { "disable" }, c);
    }
}
