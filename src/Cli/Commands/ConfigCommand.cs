using System.CommandLine;
using ZonLb.Engine.Configuration;

namespace ZonLb.Cli.Commands;

/// <summary>`config show` (the running configuration) and `config import` (a zon-lb zonlb.toml into our format).</summary>
public static class ConfigCommand
{
    public static Command Create()
    {
        var config = new Command("config", "Show the running configuration, or convert a zon-lb configuration.");

        var socket = new Option<string?>("--socket", "-s") { HelpName = "PATH", Description = "Control socket of the running instance." };
        var file = new Option<string?>("--config", "-c") { HelpName = "FILE", Description = "Read control_socket from this configuration file." };
        var json = new Option<bool>("--json") { Description = "Print {\"toml\": \"...\"} as JSON." };
        var show = new Command("show", "Print the configuration the running instance applies (after reloads and backend changes), in TOML.")
        {
            socket, file, json,
        };
        show.SetAction(r =>
        {
            try
            {
                var result = ControlClient.Call(ControlClient.ResolveSocket(r.GetValue(socket), r.GetValue(file)), "config.show");
                Console.Write(r.GetValue(json) ? result?.ToJsonString() + "\n" : result?["toml"]?.GetValue<string>());
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is ControlException or ConfigException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.RuntimeError;
            }
        });
        config.Subcommands.Add(show);

        var input = new Argument<string>("FILE") { Description = "A zon-lb zonlb.toml." };
        var import = new Command("import",
            "Read a zon-lb configuration ([netif.<if>.<gid>] groups, [backend.<gid>_<idx>] backends) and print the same\n" +
            "load balancer in zonlb-afxdp's format. zon-lb has no weights or health checks: every backend gets weight 1\n" +
            "and no health check.\nExample: zonlb-afxdp config import zonlb.toml > zonlb-afxdp.toml") { input };
        import.SetAction(r =>
        {
            try
            {
                var (cfg, notes) = ZonLbImporter.ImportFile(r.GetValue(input)!);
                foreach (var n in notes)
                    Console.Out.WriteLine($"# {n}");
                Console.Out.Write(ConfigWriter.Write(cfg));
                return ExitCodes.Ok;
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.ConfigError;
            }
        });
        config.Subcommands.Add(import);
        return config;
    }
}
