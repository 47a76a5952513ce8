#include <gtest/gtest.h>

#include "test_util.h"
#include "v2m/config.h"
#include "v2m/error.h"

using namespace v2m;

namespace {

struct Inner {
  int64_t width = 8;
  std::vector<int64_t> ratios = {8, 5};
  void visit(ConfigVisitor& v) {
    v.field("width", width, {1, 4096});
    v.field("ratios", ratios, {1, 64});
  }
};

struct Outer {
  std::string name = "tiny";
  double lr = 1e-3;
  bool motion = true;
  std::string mode = "a";
  Inner inner;
  void visit(ConfigVisitor& v) {
    v.field("name", name);
    v.field("lr", lr, {0, 1});
    v.field("motion", motion);
    v.field("mode", mode, {"a", "b"});
    v.section("inner", inner);
  }
};

std::string bind_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    ConfigDoc d = ConfigDoc::parse(yaml, "c.yaml");
    for (auto& s : sets) d.set(s);
    Outer o;
    d.bind(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, BindsValuesAndKeepsDefaults) {
  Outer o;
  ConfigDoc::parse("name: s\ninner:\n  width: 1024\n", "c.yaml").bind(o);
  EXPECT_EQ(o.name, "s");
  EXPECT_EQ(o.inner.width, 1024);
  EXPECT_EQ(o.inner.ratios, (std::vector<int64_t>{8, 5}));
  EXPECT_DOUBLE_EQ(o.lr, 1e-3);
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  const std::string e = bind_error("name: s\ninner:\n  width: 4\n  depth: 3\n");
  EXPECT_NE(e.find("c.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("inner.depth"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
}

TEST(Config, WrongTypeIsAnError) {
  const std::string e = bind_error("lr: fast\n");
  EXPECT_NE(e.find("c.yaml:1"), std::string::npos) << e;
  EXPECT_NE(e.find("'lr'"), std::string::npos) << e;
  EXPECT_NE(bind_error("motion: maybe\n").find("true or false"), std::string::npos);
  EXPECT_NE(bind_error("inner:\n  width: 2.5\n").find("integer"), std::string::npos);
  EXPECT_NE(bind_error("inner: 3\n").find("mapping"), std::string::npos);
}

TEST(Config, OutOfRangeIsAnError) {
  const std::string e = bind_error("inner:\n  width: 0\n");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  EXPECT_NE(e.find("inner.width"), std::string::npos) << e;
  EXPECT_NE(bind_error("inner:\n  ratios: [8, 100]\n").find("out of range"), std::string::npos);
  EXPECT_NE(bind_error("mode: c\n").find("not one of"), std::string::npos);
}

TEST(Config, SyntaxErrorNamesLine) {
  const std::string e = bind_error("name: s\ninner: [1,\n");
  EXPECT_NE(e.find("c.yaml:"), std::string::npos) << e;
}

TEST(Config, SetOverridesNestedKeys) {
  ConfigDoc d = ConfigDoc::parse("inner:\n  width: 4\n", "c.yaml");
  d.set("inner.width=64");
  d.set("inner.ratios=[2, 3]");
  d.set("lr=0.5");
  d.set("motion=false");
  Outer o;
  d.bind(o);
  EXPECT_EQ(o.inner.width, 64);
  EXPECT_EQ(o.inner.ratios, (std::vector<int64_t>{2, 3}));
  EXPECT_DOUBLE_EQ(o.lr, 0.5);
  EXPECT_FALSE(o.motion);
}

TEST(Config, SetOfUnknownKeyIsRejectedAtBind) {
  EXPECT_NE(bind_error("", {"inner.depth=3"}).find("inner.depth"), std::string::npos);
  EXPECT_THROW(ConfigDoc().set("noequals"), UsageError);
}

TEST(Config, YamlRoundTripAndHash) {
  Outer o;
  o.inner.width = 77;
  o.name = "x: y";
  const std::string y = to_yaml(o);
  Outer back;
  ConfigDoc::parse(y, "rt").bind(back);
  EXPECT_EQ(back.inner.width, 77);
  EXPECT_EQ(back.name, "x: y");
  EXPECT_EQ(to_yaml(back), y);
  EXPECT_EQ(config_hash(y), config_hash(to_yaml(back)));
  back.lr = 0.25;
  EXPECT_NE(config_hash(to_yaml(back)), config_hash(y));
}

TEST(Config, LoadMissingFileNamesIt) {
  try {
    load_config<Outer>("/nonexistent.yaml", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent.yaml"), std::string::npos);
  }
}
