using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>The documentation generated from the program's definitions stays what the program says.</summary>
public class ManualTests
{
    [Fact]
    public void Docs_configuration_md_is_what_the_option_table_generates()
    {
        var generated = Command.Run("dotnet", new[] { ZonLbProcess.CliPath, "manual", "configuration.md" }, TimeSpan.FromSeconds(60));
        string committed = File.ReadAllText(Path.Combine(Command.RepoRoot(), "docs", "configuration.md"));

        Assert.True(generated.ExitCode == 0, generated.Output);
        Assert.True(generated.Stdout == committed,
            "docs/configuration.md differs from the option table; regenerate it: dotnet src/Cli/bin/Release/net10.0/zonlb-afxdp.dll manual configuration.md > docs/configuration.md");
    }

    [Fact]
    public void The_man_page_lists_every_visible_command_of_the_cli()
    {
        string page = ZonLb.Cli.Commands.ManualCommand.Write("zonlb-afxdp.8", ZonLb.Cli.Program.Root());

        foreach (var command in ZonLb.Cli.Program.Root().Subcommands.Where(c => !c.Hidden))
            Assert.Contains($".SS \"zonlb\\-afxdp {command.Name.Replace("-", "\\-")}", page);
    }
}
