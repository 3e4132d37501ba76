using System.Reflection;
using System.Text;
using ZonLb.Engine;
using ZonLb.Testing;

namespace ZonLb.UnitTests;

/// <summary>
/// The public surface of ZonLb.Engine is deliberate: it is written down in src/Engine/PublicAPI.txt, and this
/// test fails when the assembly's surface and the file differ. After an intended change, run the unit tests
/// with ZONLB_ACCEPT_API=1 to rewrite the file, and review its diff like any other change.
/// </summary>
public class PublicApiTests
{
    private static string BaselinePath => Path.Combine(Command.RepoRoot(), "src", "Engine", "PublicAPI.txt");

    [Fact]
    public void The_public_surface_matches_the_approved_list()
    {
        string actual = Describe(typeof(LoadBalancer).Assembly);
        if (Environment.GetEnvironmentVariable("ZONLB_ACCEPT_API") == "1")
            File.WriteAllText(BaselinePath, actual);
        string approved = File.Exists(BaselinePath) ? File.ReadAllText(BaselinePath) : "";
        if (approved == actual)
            return;
        var a = approved.Split('\n').ToHashSet();
        var b = actual.Split('\n').ToHashSet();
        var diff = new StringBuilder();
        foreach (var line in b.Where(l => !a.Contains(l)))
            diff.AppendLine("+ " + line);
        foreach (var line in a.Where(l => !b.Contains(l)))
            diff.AppendLine("- " + line);
        Assert.Fail($"the public API of ZonLb.Engine changed ({BaselinePath}); if intended, rerun with ZONLB_ACCEPT_API=1:\n{diff}");
    }

    [Fact]
    public void The_pipeline_internals_are_not_public()
    {
        var exported = typeof(LoadBalancer).Assembly.GetExportedTypes().Select(t => t.Namespace).Distinct().ToList();
        foreach (var ns in new[] { "ZonLb.Engine.Pipeline", "ZonLb.Engine.Flows", "ZonLb.Engine.Nat", "ZonLb.Engine.Routing", "ZonLb.Engine.Checksums", "ZonLb.Engine.Balancing" })
            Assert.DoesNotContain(ns, exported);
    }

    /// <summary>One line per public type and per public or protected member, sorted, with full signatures.</summary>
    public static string Describe(Assembly assembly)
    {
        var lines = new List<string>();
        foreach (var t in assembly.GetExportedTypes())
        {
            lines.Add($"{Kind(t)} {Name(t)}{Bases(t)}");
            const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var m in t.GetMembers(flags))
            {
                string? line = Member(m);
                if (line != null)
                    lines.Add($"{Name(t)}: {line}");
            }
        }
        lines.Sort(StringComparer.Ordinal);
        return string.Join('\n', lines) + "\n";
    }

    private static string Kind(Type t) =>
        t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct" :
        t.IsSubclassOf(typeof(Delegate)) ? "delegate" : t.IsAbstract && t.IsSealed ? "static class" : "class";

    private static string Bases(Type t)
    {
        var parts = new List<string>();
        if (t.BaseType != null && t.BaseType != typeof(object) && t.BaseType != typeof(ValueType) && t.BaseType != typeof(Enum))
            parts.Add(Name(t.BaseType));
        parts.AddRange(t.GetInterfaces().Select(Name).OrderBy(n => n, StringComparer.Ordinal));
        return parts.Count == 0 ? "" : " : " + string.Join(", ", parts);
    }

    private static bool Visible(MethodBase? m) => m != null && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly);

    private static string? Member(MemberInfo m) => m switch
    {
        ConstructorInfo c when Visible(c) => $"ctor({Params(c)})",
        MethodInfo mi when Visible(mi) && !mi.IsSpecialName => $"{(mi.IsStatic ? "static " : "")}{Name(mi.ReturnType)} {mi.Name}{Generic(mi)}({Params(mi)})",
        MethodInfo mi when Visible(mi) && mi.IsSpecialName && mi.Name.StartsWith("op_", StringComparison.Ordinal) => $"operator {mi.Name}({Params(mi)})",
        PropertyInfo p when Visible(p.GetMethod) || Visible(p.SetMethod) =>
            $"{(p.GetMethod ?? p.SetMethod)!.IsStatic switch { true => "static ", false => "" }}{Name(p.PropertyType)} {p.Name} {{ {(Visible(p.GetMethod) ? "get; " : "")}{(Visible(p.SetMethod) ? (p.SetMethod!.ReturnParameter.GetRequiredCustomModifiers().Any(x => x.Name == "IsExternalInit") ? "init; " : "set; ") : "")}}}",
        FieldInfo f when (f.IsPublic || f.IsFamily) && !f.IsSpecialName =>
            $"{(f.IsLiteral ? "const " : f.IsStatic ? "static " : "")}{(f.IsInitOnly ? "readonly " : "")}{Name(f.FieldType)} {f.Name}{(f.IsLiteral ? " = " + f.GetRawConstantValue() : "")}",
        EventInfo e when Visible(e.AddMethod) => $"event {Name(e.EventHandlerType!)} {e.Name}",
        _ => null,
    };

    private static string Generic(MethodInfo m) =>
        m.IsGenericMethodDefinition ? "<" + string.Join(", ", m.GetGenericArguments().Select(a => a.Name)) + ">" : "";

    private static string Params(MethodBase m) => string.Join(", ", m.GetParameters().Select(p =>
        $"{(p.IsOut ? "out " : p.ParameterType.IsByRef ? (p.IsIn ? "in " : "ref ") : "")}{Name(p.ParameterType)} {p.Name}{(p.HasDefaultValue ? " = " + (p.DefaultValue ?? "null") : "")}"));

    private static string Name(Type t)
    {
        if (t.IsByRef)
            return Name(t.GetElementType()!);
        if (t.IsArray)
            return Name(t.GetElementType()!) + "[]";
        if (Nullable.GetUnderlyingType(t) is { } u)
            return Name(u) + "?";
        if (t.IsGenericParameter)
            return t.Name;
        string name = t.IsNested ? Name(t.DeclaringType!) + "." + t.Name : (t.Namespace != null ? t.Namespace + "." : "") + t.Name;
        if (!t.IsGenericType)
            return name;
        return name.Substring(0, name.IndexOf('`')) + "<" + string.Join(", ", t.GetGenericArguments().Select(Name)) + ">";
    }
}
