using System.CommandLine;
using ZonLb.Cli.Manual;

namespace ZonLb.Cli.Commands;

/// <summary>`manual PAGE` (hidden): prints a page generated from the program's own definitions, for the
/// installer and the docs: zonlb-afxdp.8 and zonlb.toml.5 (roff), configuration.md (docs/).</summary>
public static class ManualCommand
{
    public static readonly string[] Pages = { "zonlb-afxdp.8", "zonlb.toml.5", "configuration.md" };

    public static Command Create(Func<RootCommand> root)
    {
        var page = new Argument<string>("page") { Description = string.Join(" | ", Pages) };
        page.AcceptOnlyFromAmong(Pages);
        var cmd = new Command("manual", "Print a man page or the configuration reference, generated from the program's definitions.") { page };
        cmd.Hidden = true;
        cmd.SetAction(r =>
        {
            Console.Write(Write(r.GetValue(page)!, root()));
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static string Write(string page, RootCommand root) => page switch
    {
        "zonlb-afxdp.8" => CliManual.Write(root, Program.Version),
        "zonlb.toml.5" => ConfigManual.WriteRoff(Program.Version),
        _ => ConfigManual.WriteMarkdown(),
    };
}
