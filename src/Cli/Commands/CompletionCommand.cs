using System.CommandLine;

namespace ZonLb.Cli.Commands;

/// <summary>
/// Shell completion from System.CommandLine's own model of the commands: `completion bash|zsh` prints a script
/// that, on TAB, asks the hidden `complete` command for the candidates at the cursor.
/// </summary>
public static class CompletionCommand
{
    private const string BashScript = """
        # zonlb-afxdp completion for bash (zsh: autoload -U bashcompinit && bashcompinit first).
        # Install: zonlb-afxdp completion bash > /etc/bash_completion.d/zonlb-afxdp
        _zonlb_afxdp() {
            local IFS=$'\n'
            COMPREPLY=( $(compgen -W "$(zonlb-afxdp complete --position "${COMP_POINT}" "${COMP_LINE}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
        }
        complete -o default -F _zonlb_afxdp zonlb-afxdp
        """;

    public static IEnumerable<Command> Create(Func<RootCommand> root)
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh." };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var completion = new Command("completion",
            "Print a shell completion script for commands, options and their values.\n" +
            "Examples:\n" +
            "  zonlb-afxdp completion bash > /etc/bash_completion.d/zonlb-afxdp\n" +
            "  zonlb-afxdp completion zsh >> ~/.zshrc   (uses bashcompinit)") { shell };
        completion.SetAction(r =>
        {
            if (r.GetValue(shell) == "zsh")
                Console.WriteLine("autoload -U +X bashcompinit && bashcompinit");
            Console.WriteLine(BashScript);
            return ExitCodes.Ok;
        });

        var position = new Option<int?>("--position") { Description = "Cursor offset in the line." };
        var line = new Argument<string>("line") { Description = "The command line typed so far, program name first." };
        var complete = new Command("complete", "Print the completions at the cursor (used by the completion script).") { position, line };
        complete.Hidden = true;
        complete.SetAction(r =>
        {
            foreach (var c in Complete(root(), r.GetValue(line)!, r.GetValue(position)))
                Console.WriteLine(c);
            return ExitCodes.Ok;
        });
        return new[] { completion, complete };
    }

    /// <summary>The candidates for the word at <paramref name="position"/> of <paramref name="line"/> (which starts
    /// with the program's name).</summary>
    public static List<string> Complete(RootCommand root, string line, int? position)
    {
        int at = Math.Clamp(position ?? line.Length, 0, line.Length);
        int first = line.IndexOf(' ');
        string rest = first < 0 ? "" : line.Substring(first + 1);
        int restAt = Math.Max(0, at - (first + 1));
        var parsed = root.Parse(rest);
        return parsed.GetCompletions(restAt).Select(c => c.Label)
            .Where(l => !l.StartsWith('[') && !l.StartsWith('/') && l != "-?")
            .ToList();
    }
}
