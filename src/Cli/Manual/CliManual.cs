using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using ZonLb.Cli.Commands;

namespace ZonLb.Cli.Manual;

/// <summary>
/// zonlb-afxdp(8), written from the CLI's own definition (every visible command, its arguments and options with
/// their descriptions and defaults) and <see cref="ExitCodes"/>, so the page cannot drift from the program.
/// </summary>
internal static class CliManual
{
    public static string Write(RootCommand root, string version)
    {
        var man = new Roff().Title("zonlb-afxdp", 8, $"zonlb-afxdp {version}", "System Administration");
        man.Section("Name").Paragraph("zonlb-afxdp - an L3/L4 load balancer and full-NAT engine on AF_XDP sockets");
        man.Section("Synopsis").Paragraph("zonlb-afxdp COMMAND [OPTIONS]\nzonlb-afxdp --version\nzonlb-afxdp [COMMAND] --help");
        man.Section("Description").Paragraph(Reflow(root.Description ?? ""));
        man.Paragraph(
            "The configuration (zonlb.toml(5)) names the interfaces, the services with their VIPs, protocols and ports, and " +
            "their backends. `run` attaches a small XDP program to the interfaces, which steers frames for the services and " +
            "replies to the NAT addresses into AF_XDP sockets; the engine translates them in user space and sends them out of " +
            "the egress interface. A running instance answers the control commands on its control socket.");

        man.Section("Commands");
        foreach (var command in root.Subcommands)
            WriteCommand(man, command, "zonlb-afxdp");

        man.Section("Exit status");
        foreach (var (code, meaning) in ExitCodes.Meanings)
            man.Item(code.ToString(CultureInfo.InvariantCulture), meaning);
        man.Paragraph("doctor exits 0 when every check passed, 1 with warnings, 2 with errors.");

        man.Section("Files");
        man.Item("/etc/zonlb/zonlb.toml", "The configuration the systemd unit runs with (any path works with --config).");
        man.Item("/run/zonlb-afxdp/zonlb-afxdp.sock", "The default control socket (control_socket); the directory is the systemd unit's RuntimeDirectory.");
        man.Item("LIBDIR/zonlb-afxdp/bpf/zonlb_xdp.o", "The XDP steering program, loaded at start.");
        man.Item("LIBDIR/zonlb-afxdp/bpf/zonlb_trace.o", "The drop tracer used by trace; absent when the build machine's kernel had no BTF.");

        man.Section("Environment");
        man.Item("NOTIFY_SOCKET", "Set by systemd for Type=notify units: run sends READY=1 once every interface is attached and forwarding, RELOADING=1 and READY=1 around a reload, and STOPPING=1.");

        man.Section("Examples");
        man.Example(
            "# validate a file, then run it in the namespace that owns the interfaces\n" +
            "zonlb-afxdp check --config /etc/zonlb/zonlb.toml\n" +
            "ip netns exec lb zonlb-afxdp run --config /etc/zonlb/zonlb.toml\n" +
            "\n" +
            "# what the running instance does\n" +
            "zonlb-afxdp stats\n" +
            "zonlb-afxdp conntrack list --service web --limit 20\n" +
            "\n" +
            "# take a backend out for maintenance, and back\n" +
            "zonlb-afxdp backend disable --service web --address 10.20.0.2\n" +
            "zonlb-afxdp backend enable --service web --address 10.20.0.2\n" +
            "\n" +
            "# where did my SYN go\n" +
            "zonlb-afxdp doctor --config /etc/zonlb/zonlb.toml\n" +
            "zonlb-afxdp trace --config /etc/zonlb/zonlb.toml --seconds 30");

        man.Section("See also");
        man.Paragraph("zonlb.toml(5), ip-netns(8), ethtool(8), xdp-loader(8), systemd.service(5)");
        return man.ToString();
    }

    private static void WriteCommand(Roff man, Command command, string parent)
    {
        if (command.Hidden)
            return;
        string path = $"{parent} {command.Name}";
        if (command.Subcommands.Count > 0 && command.Options.Count == 0 && command.Arguments.Count == 0)
        {
            foreach (var sub in command.Subcommands)
                WriteCommand(man, sub, path);
            return;
        }
        man.Subsection(Usage(command, path));
        man.Paragraph(Reflow(command.Description ?? ""));
        foreach (var argument in command.Arguments)
            if (!argument.Hidden)
                man.Item(argument.Name.ToUpperInvariant(), argument.Description ?? "");
        foreach (var option in command.Options)
        {
            if (option.Hidden || option is HelpOption)
                continue;
            string names = string.Join(", ", new[] { option.Name }.Concat(option.Aliases.Order(StringComparer.Ordinal)));
            string value = option.ValueType == typeof(bool) ? "" : " " + ValueName(option);
            string text = option.Description ?? "";
            if (option.Required)
                text += " Required.";
            else if (option.HasDefaultValue && option.ValueType != typeof(bool) && option.GetDefaultValue() is { } d)
                text += string.Create(CultureInfo.InvariantCulture, $" Default: {d}.");
            man.Item(names + value, text);
        }
        foreach (var sub in command.Subcommands)
            WriteCommand(man, sub, path);
    }

    private static string Usage(Command command, string path)
    {
        var parts = new List<string> { path };
        foreach (var argument in command.Arguments)
            if (!argument.Hidden)
                parts.Add(argument.Name.ToUpperInvariant());
        foreach (var option in command.Options)
        {
            if (option.Hidden || option is HelpOption)
                continue;
            string one = option.ValueType == typeof(bool) ? option.Name : $"{option.Name} {ValueName(option)}";
            parts.Add(option.Required ? one : $"[{one}]");
        }
        return string.Join(' ', parts);
    }

    /// <summary>Help text is wrapped for an 80-column terminal; a man page fills its own lines. Keeps the breaks
    /// before lines that start an example, an exit-code list or an indented line.</summary>
    private static string Reflow(string text)
    {
        var lines = text.Split('\n');
        var sb = new System.Text.StringBuilder(lines[0]);
        for (int i = 1; i < lines.Length; i++)
        {
            string line = lines[i];
            bool keep = line.StartsWith(' ') || line.StartsWith("Example", StringComparison.Ordinal) ||
                        line.StartsWith("Exit code", StringComparison.Ordinal) || lines[i - 1].EndsWith(':');
            sb.Append(keep ? '\n' : ' ').Append(keep ? line : line.TrimStart());
        }
        return sb.ToString();
    }

    private static string ValueName(Option option) =>
        option.HelpName ?? option.Name.TrimStart('-').Replace('-', '_').ToUpperInvariant();
}
