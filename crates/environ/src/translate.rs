//! Module translation: validate the bytes with wasmparser and record a
//! `ModuleInfo` plus the function bodies, ready for a `Compiler`.

use crate::const_expr::{ConstExpr, ConstOp};
use crate::error::{WasmError, WasmResult};
use crate::index::*;
use crate::module::*;
use crate::types::*;
use wasmparser::{
    FuncToValidate, FuncValidatorAllocations, FunctionBody, KnownCustom, Name, Parser, Payload, TypeRef, ValidPayload,
    Validator, ValidatorResources, WasmFeatures,
};

/// A function body waiting to be compiled, with the validator that checks it
/// operator by operator as the compiler reads it.
pub struct FunctionBodyInput<'a> {
    /// The body bytes.
    pub body: FunctionBody<'a>,
    /// Validator for this body.
    pub validator: FuncToValidate<ValidatorResources>,
}

/// The result of translating a module's bytes.
pub struct ModuleTranslation<'a> {
    /// Module-level information.
    pub info: ModuleInfo,
    /// Bodies of the defined functions, in index order.
    pub bodies: Vec<FunctionBodyInput<'a>>,
}

/// Validates `wasm` (module-level sections eagerly; function bodies are
/// returned with their validators and checked during compilation, or by
/// [`validate_function_bodies`]).
///
/// # Errors
///
/// [`WasmError::Invalid`] with the byte offset for malformed or invalid
/// input; [`WasmError::Unsupported`] for constructs Kiln cannot run.
pub fn translate_module(wasm: &[u8], features: WasmFeatures) -> WasmResult<ModuleTranslation<'_>> {
    let mut validator = Validator::new_with_features(features);
    let mut info = ModuleInfo::default();
    let mut bodies = Vec::new();
    let mut escaping: Vec<u32> = Vec::new();

    let mut parser = Parser::new(0);
    parser.set_features(features);
    for payload in parser.parse_all(wasm) {
        let payload = payload?;
        match validator.payload(&payload)? {
            ValidPayload::Ok => {}
            ValidPayload::Func(validator, body) => {
                bodies.push(FunctionBodyInput { body, validator });
                continue;
            }
            ValidPayload::End(_) => {}
            ValidPayload::Parser(_) => {
                return Err(WasmError::Unsupported("nested modules and components".into()));
            }
        }
        match payload {
            Payload::Version { encoding, range, .. } if encoding != wasmparser::Encoding::Module => {
                return Err(WasmError::Invalid {
                    message: "expected a core WebAssembly module, found a component".into(),
                    offset: range.start,
                });
            }
            Payload::TypeSection(section) => {
                for group in section {
                    let group = group?;
                    let start = info.types.len();
                    info.rec_group_starts.push(start as u32);
                    let types: Vec<_> = group.into_types().collect();
                    // A type refers to earlier types and to its own
                    // recursion group (validated), so the kinds of those
                    // are all it needs.
                    let mut kinds: Vec<CompositeKind> = info.types.iter().map(|t| t.composite.kind()).collect();
                    kinds.extend(types.iter().map(|t| match t.composite_type.inner {
                        wasmparser::CompositeInnerType::Struct(_) => CompositeKind::Struct,
                        wasmparser::CompositeInnerType::Array(_) => CompositeKind::Array,
                        _ => CompositeKind::Func,
                    }));
                    for sub in types {
                        info.types.push(WasmSubType::from_wasmparser(&sub, kinds.as_slice())?);
                    }
                }
            }
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import?;
                    let (ty, index) = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            let t = TypeIndex::from_u32(t);
                            info.functions.push(t);
                            info.num_imported_funcs += 1;
                            (
                                EntityType::Function(t),
                                EntityIndex::Function(FuncIndex::from_u32(info.functions.len() as u32 - 1)),
                            )
                        }
                        TypeRef::Table(t) => {
                            let t = TableType::from_wasmparser(&t, info.types.as_slice())?;
                            info.tables.push(t);
                            info.num_imported_tables += 1;
                            (
                                EntityType::Table(t),
                                EntityIndex::Table(TableIndex::from_u32(info.tables.len() as u32 - 1)),
                            )
                        }
                        TypeRef::Memory(m) => {
                            let m = MemoryType::from_wasmparser(&m);
                            info.memories.push(m);
                            info.num_imported_memories += 1;
                            (
                                EntityType::Memory(m),
                                EntityIndex::Memory(MemoryIndex::from_u32(info.memories.len() as u32 - 1)),
                            )
                        }
                        TypeRef::Global(g) => {
                            let g = GlobalType::from_wasmparser(&g, info.types.as_slice())?;
                            info.globals.push(g);
                            info.num_imported_globals += 1;
                            (
                                EntityType::Global(g),
                                EntityIndex::Global(GlobalIndex::from_u32(info.globals.len() as u32 - 1)),
                            )
                        }
                        TypeRef::Tag(t) => {
                            let ty = TypeIndex::from_u32(t.func_type_idx);
                            info.tags.push(ty);
                            info.num_imported_tags += 1;
                            (EntityType::Tag(ty), EntityIndex::Tag(TagIndex::from_u32(info.tags.len() as u32 - 1)))
                        }
                    };
                    info.imports.push(Import {
                        module: import.module.to_string(),
                        field: import.name.to_string(),
                        ty,
                        index,
                    });
                }
            }
            Payload::FunctionSection(section) => {
                for ty in section {
                    info.functions.push(TypeIndex::from_u32(ty?));
                }
            }
            Payload::TableSection(section) => {
                for table in section {
                    let table = table?;
                    info.tables.push(TableType::from_wasmparser(&table.ty, info.types.as_slice())?);
                    info.table_inits.push(match table.init {
                        wasmparser::TableInit::RefNull => TableInit::Null,
                        wasmparser::TableInit::Expr(e) => {
                            let e = ConstExpr::from_wasmparser(&e)?;
                            note_ref_funcs(&e, &mut escaping);
                            TableInit::Expr(e)
                        }
                    });
                }
            }
            Payload::MemorySection(section) => {
                for memory in section {
                    info.memories.push(MemoryType::from_wasmparser(&memory?));
                }
            }
            Payload::TagSection(section) => {
                for tag in section {
                    info.tags.push(TypeIndex::from_u32(tag?.func_type_idx));
                }
            }
            Payload::GlobalSection(section) => {
                for global in section {
                    let global = global?;
                    info.globals.push(GlobalType::from_wasmparser(&global.ty, info.types.as_slice())?);
                    let init = ConstExpr::from_wasmparser(&global.init_expr)?;
                    note_ref_funcs(&init, &mut escaping);
                    info.global_inits.push(init);
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export?;
                    let index = match export.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            escaping.push(export.index);
                            EntityIndex::Function(FuncIndex::from_u32(export.index))
                        }
                        wasmparser::ExternalKind::Table => EntityIndex::Table(TableIndex::from_u32(export.index)),
                        wasmparser::ExternalKind::Memory => EntityIndex::Memory(MemoryIndex::from_u32(export.index)),
                        wasmparser::ExternalKind::Global => EntityIndex::Global(GlobalIndex::from_u32(export.index)),
                        wasmparser::ExternalKind::Tag => EntityIndex::Tag(TagIndex::from_u32(export.index)),
                    };
                    info.exports.push(Export { name: export.name.to_string(), index });
                }
            }
            Payload::StartSection { func, .. } => {
                // The host calls the start function, so it needs a
                // function-reference record like any escaping function.
                escaping.push(func);
                info.start = Some(FuncIndex::from_u32(func));
            }
            Payload::ElementSection(section) => {
                for element in section {
                    let element = element?;
                    let mode = match element.kind {
                        wasmparser::ElementKind::Passive => SegmentMode::Passive,
                        wasmparser::ElementKind::Declared => SegmentMode::Declared,
                        wasmparser::ElementKind::Active { table_index, offset_expr } => SegmentMode::Active {
                            index: table_index.unwrap_or(0),
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    let (ty, items) = match element.items {
                        wasmparser::ElementItems::Functions(funcs) => {
                            let funcs = funcs.into_iter().collect::<Result<Vec<u32>, _>>()?;
                            escaping.extend_from_slice(&funcs);
                            (WasmRefType::FUNCREF, ElementItems::Functions(funcs))
                        }
                        wasmparser::ElementItems::Expressions(ty, exprs) => {
                            let mut items = Vec::new();
                            for e in exprs {
                                let e = ConstExpr::from_wasmparser(&e?)?;
                                note_ref_funcs(&e, &mut escaping);
                                items.push(e);
                            }
                            (WasmRefType::from_wasmparser(ty, info.types.as_slice())?, ElementItems::Expressions(items))
                        }
                    };
                    info.elements.push(ElementSegment { mode, ty, items });
                }
            }
            Payload::DataSection(section) => {
                for data in section {
                    let data = data?;
                    let mode = match data.kind {
                        wasmparser::DataKind::Passive => SegmentMode::Passive,
                        wasmparser::DataKind::Active { memory_index, offset_expr } => SegmentMode::Active {
                            index: memory_index,
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    info.data.push(DataSegment { mode, bytes: crate::blob::Blob::from_vec(data.data.to_vec()) });
                }
            }
            Payload::CustomSection(section) => {
                if let KnownCustom::Name(names) = section.as_known() {
                    // The name section is advisory: a malformed one is ignored,
                    // as the spec requires.
                    let _ = read_names(names, &mut info);
                }
            }
            _ => {}
        }
    }

    if bodies.len() != info.num_defined_funcs() as usize {
        return Err(WasmError::Invalid {
            message: "function and code section have inconsistent lengths".into(),
            offset: wasm.len() as u64,
        });
    }
    escaping.sort_unstable();
    escaping.dedup();
    info.escaping_funcs = escaping.into_iter().map(FuncIndex::from_u32).collect();
    info.compute_lazy_tables();
    Ok(ModuleTranslation { info, bodies })
}

fn note_ref_funcs(expr: &ConstExpr, escaping: &mut Vec<u32>) {
    for op in &expr.ops {
        if let ConstOp::RefFunc(f) = op {
            escaping.push(*f);
        }
    }
}

fn read_names(names: wasmparser::NameSectionReader<'_>, info: &mut ModuleInfo) -> wasmparser::Result<()> {
    for name in names {
        match name? {
            Name::Module { name, .. } => info.name = Some(name.to_string()),
            Name::Function(map) => {
                for naming in map {
                    let naming = naming?;
                    info.func_names.push((FuncIndex::from_u32(naming.index), naming.name.to_string()));
                }
            }
            _ => {}
        }
    }
    info.func_names.sort_by_key(|(i, _)| *i);
    info.func_names.dedup_by_key(|(i, _)| *i);
    Ok(())
}

impl Clone for FunctionBodyInput<'_> {
    fn clone(&self) -> Self {
        let v = &self.validator;
        FunctionBodyInput {
            body: self.body.clone(),
            validator: FuncToValidate {
                resources: v.resources.clone(),
                index: v.index,
                ty: v.ty,
                features: v.features,
            },
        }
    }
}

/// Validates one function body without compiling it or taking it,
/// reusing `allocations` (the validator's buffers) from body to body.
///
/// # Errors
///
/// The first validation error in the body, with its byte offset.
pub fn validate_function_body(
    input: &FunctionBodyInput<'_>,
    allocations: &mut FuncValidatorAllocations,
) -> WasmResult<()> {
    let v = &input.validator;
    let borrowed = FuncToValidate { resources: &v.resources, index: v.index, ty: v.ty, features: v.features };
    let mut validator = borrowed.into_validator(std::mem::take(allocations));
    validator.validate(&input.body)?;
    *allocations = validator.into_allocations();
    Ok(())
}

/// Validates every function body of a translation without compiling it
/// (used by `Module::validate`).
///
/// # Errors
///
/// The first validation error found, with its byte offset.
pub fn validate_function_bodies(bodies: Vec<FunctionBodyInput<'_>>) -> WasmResult<()> {
    for input in bodies {
        let mut v = input.validator.into_validator(Default::default());
        v.validate(&input.body)?;
    }
    Ok(())
}
