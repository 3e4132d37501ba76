using System.CommandLine;

namespace ZonLb.Cli.Commands;

/// <summary>
/// Shell completion from System.CommandLine's own model of the commands: `completion bash|zsh|fish` prints a script
/// that, on TAB, asks the hidden `complete` command for the candidates at the cursor.
/// </summary>
public static class CompletionCommand
{
    private const string BashScript = """
        # zonlb-afxdp completion for bash.
        # Install: zonlb-afxdp completion bash > /usr/share/bash-completion/completions/zonlb-afxdp
        _zonlb_afxdp() {
            local IFS=$'\n'
            COMPREPLY=( $(compgen -W "$(zonlb-afxdp complete --position "${COMP_POINT}" "${COMP_LINE}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
        }
        complete -o default -F _zonlb_afxdp zonlb-afxdp
        """;

    // zsh: a completion function file (fpath, e.g. /usr/share/zsh/vendor-completions/_zonlb-afxdp); its body runs
    // on TAB with words and CURRENT set by the completion system.
    private const string ZshScript = """
        #compdef zonlb-afxdp
        # zonlb-afxdp completion for zsh.
        # Install: zonlb-afxdp completion zsh > /usr/local/share/zsh/site-functions/_zonlb-afxdp
        local line="${(j: :)words[1,CURRENT]}"
        local -a candidates
        candidates=(${(f)"$(zonlb-afxdp complete --position ${#line} "$line" 2>/dev/null)"})
        compadd -- $candidates
        """;

    private const string FishScript = """
        # zonlb-afxdp completion for fish.
        # Install: zonlb-afxdp completion fish > /usr/share/fish/vendor_completions.d/zonlb-afxdp.fish
        function __zonlb_afxdp_complete
            set -l line (commandline -cp)
            zonlb-afxdp complete --position (string length -- "$line") "$line" 2>/dev/null
        end
        complete -c zonlb-afxdp -f -a '(__zonlb_afxdp_complete)'
        """;

    public static IEnumerable<Command> Create(Func<RootCommand> root)
    {
        var shell = new Argument<string>("shell") { Description = "bash, zsh or fish." };
        shell.AcceptOnlyFromAmong("bash", "zsh", "fish");
        var completion = new Command("completion",
            "Print a shell completion script for commands, options and their values.\n" +
            "Examples:\n" +
            "  zonlb-afxdp completion bash > /usr/share/bash-completion/completions/zonlb-afxdp\n" +
            "  zonlb-afxdp completion zsh > /usr/local/share/zsh/site-functions/_zonlb-afxdp\n" +
            "  zonlb-afxdp completion fish > /usr/share/fish/vendor_completions.d/zonlb-afxdp.fish") { shell };
        completion.SetAction(r =>
        {
            Console.WriteLine(Script(r.GetValue(shell)!));
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

    /// <summary>The completion script for bash, zsh or fish.</summary>
    public static string Script(string shell) => shell switch
    {
        "zsh" => ZshScript,
        "fish" => FishScript,
        _ => BashScript,
    };

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
