using ZonLb.Engine.Configuration;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// scripts/install.sh into a temporary DESTDIR (as a package build would): the installed program runs, its man
/// pages render, its completions load in bash, zsh and fish, its unit points at it, and --uninstall leaves
/// nothing behind.
/// </summary>
public sealed class InstallTests : IDisposable
{
    private const string Prefix = "/usr/local";
    private readonly string _destdir = Directory.CreateTempSubdirectory("zlbt-install-").FullName;

    private string Root => _destdir + Prefix;

    private CommandResult Install(params string[] args) =>
        Command.Run("bash", new[] { Path.Combine(Command.RepoRoot(), "scripts", "install.sh"), "--destdir", _destdir, "--prefix", Prefix }.Concat(args),
            TimeSpan.FromMinutes(5));

    private static CommandResult Man(string page) =>
        Command.Run("env", new[] { "MANWIDTH=1000", "MANPAGER=cat", "PAGER=cat", "man", "-l", page }, TimeSpan.FromSeconds(60));

    [Fact]
    public void The_installed_program_runs_with_its_man_pages_completions_and_unit_and_uninstall_removes_everything()
    {
        var install = Install("--no-build");
        Assert.True(install.ExitCode == 0, install.Output);
        string bin = Path.Combine(Root, "bin", "zonlb-afxdp");
        string config = Path.Combine(_destdir, "zonlb.toml");
        File.WriteAllText(config, Topology.DefaultConfig());

        var version = Command.Run(bin, "--version");
        var check = Command.Run(bin, "check", "--offline", "--config", config);
        var man8 = Man(Path.Combine(Root, "share", "man", "man8", "zonlb-afxdp.8"));
        var man5 = Man(Path.Combine(Root, "share", "man", "man5", "zonlb.toml.5"));
        string unit = File.ReadAllText(Path.Combine(Root, "lib", "systemd", "system", "zonlb-afxdp.service"));

        Assert.True(version.ExitCode == 0, version.Output);
        Assert.StartsWith("zonlb-afxdp 0.1.0 ", version.Stdout);
        Assert.True(check.ExitCode == 0, check.Output);
        Assert.Contains(": ok (2 interface(s), 3 service(s), 3 backend(s))", check.Stdout);
        Assert.True(File.Exists(Path.Combine(Root, "lib", "zonlb-afxdp", "bpf", "zonlb_xdp.o")));
        Assert.True(man8.ExitCode == 0, man8.Output);
        foreach (var heading in new[] { "NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "FILES", "EXAMPLES" })
            Assert.Contains(heading, man8.Stdout);
        foreach (var command in new[] { "zonlb-afxdp run --config FILE", "zonlb-afxdp conntrack list", "zonlb-afxdp backend add", "zonlb-afxdp doctor" })
            Assert.Contains(command, man8.Stdout);
        Assert.True(man5.ExitCode == 0, man5.Output);
        foreach (var option in ConfigOptions.All)
            Assert.Contains($"{option.Key} (", man5.Stdout);
        Assert.Contains($"ExecStart={Prefix}/bin/zonlb-afxdp run --config /etc/zonlb/zonlb.toml", unit);

        var uninstall = Install("--uninstall");
        Assert.True(uninstall.ExitCode == 0, uninstall.Output);
        Assert.DoesNotContain(Directory.GetFiles(_destdir, "*", SearchOption.AllDirectories), f => f != config);
    }

    [Fact]
    public void The_installed_completions_complete_a_command_in_bash_zsh_and_fish()
    {
        var install = Install("--no-build");
        Assert.True(install.ExitCode == 0, install.Output);
        string share = Path.Combine(Root, "share");
        string path = $"{Path.Combine(Root, "bin")}:{Environment.GetEnvironmentVariable("PATH")}";

        var bash = Command.Run("env", new[] { $"PATH={path}", "bash", "-c",
            $". '{share}/bash-completion/completions/zonlb-afxdp'; COMP_LINE='zonlb-afxdp st'; COMP_POINT=${{#COMP_LINE}}; " +
            "COMP_WORDS=(zonlb-afxdp st); COMP_CWORD=1; _zonlb_afxdp; printf '%s\\n' \"${COMPREPLY[@]}\"" }, TimeSpan.FromSeconds(60));
        // zsh runs the function file's body on TAB with words and CURRENT set; compadd is its output
        var zsh = Command.Run("env", new[] { $"PATH={path}", "zsh", "-f", "-c",
            $"compadd() {{ shift; print -l -- \"$@\" }}; words=(zonlb-afxdp st); CURRENT=2; . '{share}/zsh/site-functions/_zonlb-afxdp'" },
            TimeSpan.FromSeconds(60));
        var fish = Command.Run("env", new[] { $"PATH={path}", "fish", "--no-config", "-c",
            $"source '{share}/fish/vendor_completions.d/zonlb-afxdp.fish'; complete -C 'zonlb-afxdp st'" }, TimeSpan.FromSeconds(60));

        foreach (var r in new[] { bash, zsh, fish })
        {
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.Equal(new[] { "stats", "status" }, r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]).Where(l => l.StartsWith("st", StringComparison.Ordinal)).Order());
        }
    }

    public void Dispose() => Directory.Delete(_destdir, recursive: true);
}
